package observe

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueCollectInterval is how often Cached collects at most.
const QueueCollectInterval = 5 * time.Second

// Cached is a prometheus.Collector that collects its inner collector at
// most once per interval and serves the result to every scrape in between.
// Concurrent scrapes of a stale cache share one collection (the first
// collects, the others wait for it), so a collector that reads Redis costs
// Redis one collection per interval however many scrapers there are.
//
// It describes nothing (an "unchecked" collector): a collector that reads
// Redis to describe itself would block registration on a Redis that is down.
type Cached struct {
	inner    prometheus.Collector
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex // held during a collection: concurrent scrapes wait for it
	at      time.Time
	metrics []prometheus.Metric
}

// NewCached caches c for interval (QueueCollectInterval when 0).
func NewCached(c prometheus.Collector, interval time.Duration) *Cached {
	if interval <= 0 {
		interval = QueueCollectInterval
	}
	return &Cached{inner: c, interval: interval, now: time.Now}
}

// Describe describes nothing; see Cached.
func (*Cached) Describe(chan<- *prometheus.Desc) {}

// Collect sends the cached metrics, collecting them first when they are
// older than the interval.
func (c *Cached) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.get() {
		ch <- m
	}
}

func (c *Cached) get() []prometheus.Metric {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.metrics != nil && c.now().Sub(c.at) < c.interval {
		return c.metrics
	}
	in := make(chan prometheus.Metric, 64)
	go func() { c.inner.Collect(in); close(in) }()
	ms := make([]prometheus.Metric, 0, len(c.metrics))
	for m := range in {
		ms = append(ms, m)
	}
	c.metrics, c.at = ms, c.now()
	return ms
}
