package monitor

import (
	"context"
	"net/http"
	"time"

	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/escrowjobs/escrowjobs/partner"
)

// healthTimeout bounds the PING of /healthz.
const healthTimeout = 2 * time.Second

// healthz answers 200 {"status":"ok"} when Redis answers PING, else 503.
func (m *Monitor) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := m.inspector.Ping(ctx); err != nil {
		m.log.Warn("monitor: health check failed", "err", err.Error())
		writeJSON(w, http.StatusServiceUnavailable, struct {
			Status string    `json:"status"`
			Error  errorBody `json:"error"`
		}{"unavailable", errorBody{Code: codeUnavailable, Message: "Redis did not answer PING"}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// metricsHandler serves a private registry: asynq's queue metrics (asynq_*),
// collected at most once per observe.QueueCollectInterval however many
// scrape, and the process and Go runtime collectors. Nothing is registered
// globally.
func (m *Monitor) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		observe.NewCached(metrics.NewQueueMetricsCollector(m.inspector.Asynq()), observe.QueueCollectInterval),
		observe.NewCached(m.partnerMetrics(), observe.QueueCollectInterval),
		// The fleet's flow counters and the oldest running flow's age, read
		// from Redis (at most once per flows.CollectInterval): exported here,
		// not by every worker.
		m.flowStore().Collector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	reg.MustRegister(m.throttle.collectors()...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		Timeout:             10 * time.Second,
		MaxRequestsInFlight: 256, // the queue figures are cached: a scrape costs Redis nothing more
	})
}

// partnerMetrics are the per-partner delivery metrics, read from Redis.
func (m *Monitor) partnerMetrics() prometheus.Collector {
	st, err := partner.NewState(partner.StateConfig{Redis: m.inspector.Redis()})
	if err != nil {
		return prometheus.NewRegistry() // cannot happen: the Redis client is set
	}
	return partner.NewCollector(st)
}
