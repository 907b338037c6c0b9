package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is the state of the outbox table.
type Stats struct {
	// Backlog is the number of rows waiting to be relayed.
	Backlog int64
	// OldestAge is how long the oldest waiting row has waited (0 when none).
	OldestAge time.Duration
}

// Stats reads the backlog and the age of the oldest row.
func (r *Relay) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	var age float64
	err := r.cfg.DB.QueryRow(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 FROM escrowjobs_outbox`).
		Scan(&s.Backlog, &age)
	if err != nil {
		return Stats{}, fmt.Errorf("outbox: stats: %w", err)
	}
	s.OldestAge = time.Duration(max(age, 0) * float64(time.Second))
	return s, nil
}

// Collectors returns the relay's Prometheus collectors: the backlog and
// oldest-row age (read from the table at each scrape, within 2 s) and
// counters of enqueued, duplicate and failed rows and of partner events
// held back for a later batch. Register them on the
// process's registry.
func (r *Relay) Collectors() []prometheus.Collector {
	return []prometheus.Collector{&collector{r: r}}
}

// Register registers the relay's collectors on reg (the process's metrics
// registry; cmd/server's once it serves /metrics).
func (r *Relay) Register(reg prometheus.Registerer) error {
	for _, c := range r.Collectors() {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("outbox: register metrics: %w", err)
		}
	}
	return nil
}

var (
	backlogDesc = prometheus.NewDesc("escrowjobs_outbox_backlog",
		"Rows in the outbox table waiting to be relayed to Redis.", nil, nil)
	oldestDesc = prometheus.NewDesc("escrowjobs_outbox_oldest_age_seconds",
		"Age of the oldest row in the outbox table (0 when empty).", nil, nil)
	relayedDesc = prometheus.NewDesc("escrowjobs_outbox_relayed_total",
		"Outbox rows relayed by this process, by result: enqueued (a new job) or duplicate (Redis already held the job ID).", []string{"result"}, nil)
	failedDesc = prometheus.NewDesc("escrowjobs_outbox_enqueue_failures_total",
		"Enqueue attempts of this process's relay that failed; their rows stay for the next attempt.", nil, nil)
	heldDesc = prometheus.NewDesc("escrowjobs_outbox_held_back_total",
		"Partner events this process's relay left for a later batch because an earlier event of their escrow was still outside the batch (another batch held it, or its enqueue failed).", nil, nil)
	upDesc = prometheus.NewDesc("escrowjobs_outbox_stats_up",
		"1 when the last scrape could read the outbox table, else 0.", nil, nil)
)

type collector struct{ r *Relay }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{backlogDesc, oldestDesc, relayedDesc, failedDesc, heldDesc, upDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	n := c.r.Counts()
	ch <- prometheus.MustNewConstMetric(relayedDesc, prometheus.CounterValue, float64(n.Enqueued), "enqueued")
	ch <- prometheus.MustNewConstMetric(relayedDesc, prometheus.CounterValue, float64(n.Duplicates), "duplicate")
	ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.CounterValue, float64(n.Failures))
	ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.CounterValue, float64(n.HeldBack))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := c.r.Stats(ctx)
	if err != nil {
		c.r.log.Warn("outbox metrics: cannot read the table", "error", err.Error())
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(s.Backlog))
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, s.OldestAge.Seconds())
}
