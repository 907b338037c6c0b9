package observe

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names registered by NewJobMetrics.
const (
	MetricProcessed    = "escrowjobs_jobs_processed_total"
	MetricFailed       = "escrowjobs_jobs_failed_total"
	MetricRetried      = "escrowjobs_jobs_retried_total"
	MetricDeadLettered = "escrowjobs_jobs_dead_lettered_total"
	MetricDuration     = "escrowjobs_job_duration_seconds"
	MetricStartLatency = "escrowjobs_job_start_latency_seconds"
)

// JobMetrics are the per-type job counters and histograms of a worker.
type JobMetrics struct {
	processed, failed, retried, deadLettered *prometheus.CounterVec
	duration, latency                        *prometheus.HistogramVec
	// byType holds the series of every type given to NewJobMetrics, looked
	// up once there: an attempt then costs one map read, not a label
	// lookup per series. Never written after NewJobMetrics.
	byType map[string]*typeMetrics
}

// typeMetrics are the series of one task type.
type typeMetrics struct {
	processed, failed, retried, deadLettered prometheus.Counter
	duration, latency                        prometheus.Observer
}

// of returns the series of taskType (looked up now for a type
// NewJobMetrics was not given).
func (m *JobMetrics) of(taskType string) *typeMetrics {
	if tm, ok := m.byType[taskType]; ok {
		return tm
	}
	return m.lookup(taskType)
}

func (m *JobMetrics) lookup(t string) *typeMetrics {
	return &typeMetrics{
		processed: m.processed.WithLabelValues(t), failed: m.failed.WithLabelValues(t),
		retried: m.retried.WithLabelValues(t), deadLettered: m.deadLettered.WithLabelValues(t),
		duration: m.duration.WithLabelValues(t), latency: m.latency.WithLabelValues(t),
	}
}

// NewJobMetrics registers the job metrics on reg. Every type in types
// starts at zero, so a type that never ran still has its series.
func NewJobMetrics(reg prometheus.Registerer, types []string) (*JobMetrics, error) {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"type"})
	}
	m := &JobMetrics{
		processed:    counter(MetricProcessed, "Job attempts that succeeded, by task type."),
		failed:       counter(MetricFailed, "Job attempts that failed, by task type (retried + dead-lettered)."),
		retried:      counter(MetricRetried, "Failed job attempts that will be retried, by task type."),
		deadLettered: counter(MetricDeadLettered, "Failed job attempts after which the job was archived (a dead letter), by task type."),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricDuration, Help: "Handler duration of one attempt, by task type.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"type"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricStartLatency, Help: "From the time a job was due at enqueue to the start of its first attempt, by task type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"type"}),
	}
	for _, c := range []prometheus.Collector{m.processed, m.failed, m.retried, m.deadLettered, m.duration, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.byType = make(map[string]*typeMetrics, len(types))
	for _, t := range types {
		m.byType[t] = m.lookup(t)
	}
	return m, nil
}
