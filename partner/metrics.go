package partner

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Descriptions of the per-partner metrics.
var (
	descDelivered = prometheus.NewDesc("escrowjobs_partner_deliveries_total",
		"Webhook deliveries a partner answered 2xx, across every worker process.", []string{"partner"}, nil)
	descFailed = prometheus.NewDesc("escrowjobs_partner_failures_total",
		"Webhook attempts that reached a partner (or timed out) and did not deliver.", []string{"partner"}, nil)
	descLatency = prometheus.NewDesc("escrowjobs_partner_delivery_duration_seconds",
		"Duration of webhook attempts per partner.", []string{"partner"}, nil)
	descCircuit = prometheus.NewDesc("escrowjobs_partner_circuit_state",
		"1 for the partner's current state: healthy, open (circuit open) or disabled.", []string{"partner", "state"}, nil)
	descConsecutive = prometheus.NewDesc("escrowjobs_partner_consecutive_failures",
		"Consecutive transient failures of the partner.", []string{"partner"}, nil)
	descWaiting = prometheus.NewDesc("escrowjobs_partner_waiting",
		"Deliveries waiting for the partner (circuit, throttle, limits, disabled, unknown).", []string{"partner"}, nil)
)

// Collector exports the per-partner metrics from Redis, so any process
// (the monitor's /metrics) shows the figures of every worker process.
type Collector struct {
	state   *State
	timeout time.Duration
}

// NewCollector returns the per-partner metrics of state.
func NewCollector(state *State) *Collector { return &Collector{state: state, timeout: 5 * time.Second} }

// Describe sends the descriptions.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDelivered, descFailed, descLatency, descCircuit, descConsecutive, descWaiting} {
		ch <- d
	}
}

// Collect reads every partner's state and counters.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	sts, err := c.state.Statuses(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descCircuit, err)
		return
	}
	for _, st := range sts {
		for _, s := range []string{StateHealthy, StateOpen, StateDisabled} {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descCircuit, prometheus.GaugeValue, v, st.ID, s)
		}
		ch <- prometheus.MustNewConstMetric(descConsecutive, prometheus.GaugeValue, float64(st.ConsecutiveFailures), st.ID)
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(st.Waiting), st.ID)
		h, err := c.state.rc.HGetAll(ctx, statsKey(st.ID)).Result()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descDelivered, err)
			continue
		}
		num := func(k string) uint64 { n, _ := strconv.ParseUint(h[k], 10, 64); return n }
		ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(num("delivered")), st.ID)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(num("failed")), st.ID)
		buckets := make(map[float64]uint64, len(latencyBuckets))
		var cum uint64
		for i, ub := range latencyBuckets {
			cum += num("le_" + strconv.Itoa(i))
			buckets[ub] = cum
		}
		sum := float64(num("latency_sum_us")) / 1e6
		ch <- prometheus.MustNewConstHistogram(descLatency, num("latency_count"), sum, buckets, st.ID)
	}
}
