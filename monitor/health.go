package monitor

import (
	"context"
	"net/http"
	"time"

	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

// metricsHandler serves a private registry: asynq's queue metrics (asynq_*)
// and the process and Go runtime collectors. Nothing is registered globally.
func (m *Monitor) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		unchecked{metrics.NewQueueMetricsCollector(m.inspector.Asynq())},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	reg.MustRegister(m.throttle.collectors()...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		Timeout:             10 * time.Second,
		MaxRequestsInFlight: 4,
	})
}

// unchecked hides a collector's descriptions from the registry. asynq's
// collector describes itself by collecting, which reads Redis: registered
// as is, New would block on a Redis that is down.
type unchecked struct{ prometheus.Collector }

func (unchecked) Describe(chan<- *prometheus.Desc) {}
