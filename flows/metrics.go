package flows

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Metric names of Collector.
const (
	MetricStarted   = "escrowjobs_flows_started_total"
	MetricCompleted = "escrowjobs_flows_completed_total"
	MetricFailed    = "escrowjobs_flows_failed_total"
	MetricCancelled = "escrowjobs_flows_cancelled_total"
	MetricOldestAge = "escrowjobs_flow_oldest_running_age_seconds"
)

// CollectInterval is how often the collector reads Redis at most.
const CollectInterval = 5 * time.Second

// newDescs are the descriptions of the counters by event, and of the gauge.
func newDescs() (map[string]*prometheus.Desc, *prometheus.Desc) {
	return map[string]*prometheus.Desc{
		"started":   prometheus.NewDesc(MetricStarted, "Flows started, by flow name.", []string{"name"}, nil),
		"completed": prometheus.NewDesc(MetricCompleted, "Flows that completed (every regular step completed), by flow name.", []string{"name"}, nil),
		"failed":    prometheus.NewDesc(MetricFailed, "Times a flow failed (a step was dead-lettered), by flow name.", []string{"name"}, nil),
		"cancelled": prometheus.NewDesc(MetricCancelled, "Flows cancelled (a failed step's dead letter was discarded), by flow name.", []string{"name"}, nil),
	}, prometheus.NewDesc(MetricOldestAge, "Age of the oldest running flow (0 when none runs).", nil, nil)
}

// Collector returns the flow metrics: the counters of flows started,
// completed, failed and cancelled per name, and the age of the oldest
// running flow. The counters are kept in Redis, incremented by whichever
// process made the transition (a worker, the API, jobctl), so every
// process that exposes this collector shows the fleet's totals; register
// it in one process per fleet (the monitor or the worker) to avoid
// counting twice. Redis is read at most once per CollectInterval however
// often it is scraped.
func (s *Store) Collector() prometheus.Collector { return s.gauge }

// oldestGauge is the Collector.
type oldestGauge struct {
	s          *Store
	descs      map[string]*prometheus.Desc
	oldestDesc *prometheus.Desc
	mu         sync.Mutex
	at         time.Time
	ms         []prometheus.Metric
}

func (g *oldestGauge) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range g.descs {
		ch <- d
	}
	ch <- g.oldestDesc
}

func (g *oldestGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ms == nil || time.Since(g.at) >= CollectInterval {
		g.ms, g.at = g.collect(), time.Now()
	}
	for _, m := range g.ms {
		ch <- m
	}
}

// collect reads the counters and the oldest running flow (dropping index
// members whose flow is no longer running, up to a few per collection).
func (g *oldestGauge) collect() []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out []prometheus.Metric
	counts, err := g.s.rc.HGetAll(ctx, statsKey).Result()
	if err == nil {
		for field, v := range counts {
			event, name, ok := strings.Cut(field, ":")
			d := g.descs[event]
			n, perr := strconv.ParseFloat(v, 64)
			if !ok || d == nil || perr != nil {
				continue
			}
			out = append(out, prometheus.MustNewConstMetric(d, prometheus.CounterValue, n, name))
		}
	}
	age := 0.0
	for range 10 {
		zs, err := g.s.rc.ZRangeWithScores(ctx, indexRunning, 0, 0).Result()
		if err != nil || len(zs) == 0 {
			break
		}
		id, _ := zs[0].Member.(string)
		state, err := g.s.rc.HGet(ctx, flowKey(id), "state").Result()
		if err == nil && state == StateRunning {
			age = max(0, time.Since(time.UnixMilli(int64(zs[0].Score))).Seconds())
			break
		}
		if err != nil && err != redis.Nil {
			break
		}
		g.s.rc.ZRem(ctx, indexRunning, id) // ended or expired: a lost index write
	}
	out = append(out, prometheus.MustNewConstMetric(g.oldestDesc, prometheus.GaugeValue, age))
	return out
}
