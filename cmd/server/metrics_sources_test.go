package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// series is one scraped sample: its labels and value.
type series struct {
	labels map[string]string
	value  float64
}

// scrape reads url's Prometheus text into series by metric name.
func scrape(t *testing.T, url string) map[string][]series {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	out := map[string][]series{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			s := series{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				s.value = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.value = m.GetGauge().GetValue()
			default:
				continue
			}
			out[name] = append(out[name], s)
		}
	}
	return out
}

// sumBy is PromQL's sum by (label) (name{match}) over the union of the
// scrapes (one Prometheus scraping every process); label "" is sum(…).
func sumBy(scrapes []map[string][]series, name, label string, match func(map[string]string) bool) map[string]float64 {
	out := map[string]float64{}
	for _, sc := range scrapes {
		for _, s := range sc[name] {
			if match == nil || match(s.labels) {
				out[s.labels[label]] += s.value
			}
		}
	}
	return out
}

var metricsListening = regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`)

// A worker and a monitor scraped together give each documented alert sum
// (docs/observability.md) its real value: a cluster-wide figure read from
// Redis (queue sizes, Redis memory, partner deliveries) comes from the
// monitor alone, a process's own counters from the worker alone.
func TestAlertSumsOverWorkerAndMonitorCountEachQueueOnce(t *testing.T) {
	recv := escrowtest.StartPartner(t)
	e := setupPartners(t, map[string]regEntry{"acme": {URL: recv.URL, Secret: recv.Secret}}, map[string]string{"METRICS_ADDR": "127.0.0.1:0"})
	e.start()
	var workerURL string
	escrowtest.Eventually(t, "the worker's metrics address", 10*time.Second, func() bool {
		m := metricsListening.FindStringSubmatch(e.logs.String())
		if m != nil {
			workerURL = "http://" + m[1] + "/metrics"
		}
		return m != nil
	})

	// Three webhooks delivered; four audit events pending in the paused low
	// queue; two e-mails scheduled for later.
	const delivered, pendingLow = 3, 4
	for i := range delivered {
		e.enqueue("evt-metrics-"+string(rune('a'+i)), "acme")
	}
	escrowtest.Eventually(t, "the webhooks delivered", 15*time.Second, func() bool { return recv.DeliveredCount() == delivered })
	ctx := context.Background()
	if err := e.insp.Asynq().PauseQueue("low"); err != nil {
		t.Fatal(err)
	}
	for i := range pendingLow {
		task, err := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{
			EventID: "evt-audit-" + string(rune('a'+i)), Actor: "escrow-api", Action: "escrow.released", TransactionID: "esc-metrics", OccurredAt: "2026-11-30T02:00:00Z",
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Enqueue(ctx, task); err != nil {
			t.Fatal(err)
		}
	}

	// The monitor, as cmd/monitor runs it (same package, same handler).
	ledger, err := deadletter.OpenFile(e.env["DEAD_LETTER_PATH"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	mon, err := monitor.New(monitor.Config{RedisOpt: e.redis, LoopbackNoAuth: true, DeadLetters: ledger, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- mon.Serve(mctx, ln) }()
	t.Cleanup(func() { stop(); <-served })
	monitorURL := "http://" + ln.Addr().String() + "/metrics"

	pendingOrRetry := func(l map[string]string) bool { return l["state"] == "pending" || l["state"] == "retry" }
	var both []map[string][]series
	// The queue figures are cached up to observe.QueueCollectInterval: wait
	// for a collection after the enqueues.
	escrowtest.Eventually(t, "the monitor to see the pending jobs", 20*time.Second, func() bool {
		both = []map[string][]series{scrape(t, workerURL), scrape(t, monitorURL)}
		return sumBy(both[1:], "asynq_tasks_enqueued_total", "queue", pendingOrRetry)["low"] >= pendingLow
	})

	// Backlog: sum by (queue) (asynq_tasks_enqueued_total{state=~"pending|retry"})
	backlog := sumBy(both, "asynq_tasks_enqueued_total", "queue", pendingOrRetry)
	queues, err := e.insp.Asynq().Queues()
	if err != nil {
		t.Fatal(err)
	}
	var memory int64
	for _, q := range queues {
		info, err := e.insp.Asynq().GetQueueInfo(q)
		if err != nil {
			t.Fatal(err)
		}
		memory += info.MemoryUsage
		if got, want := backlog[q], float64(info.Pending+info.Retry); got != want {
			t.Errorf("backlog of %s: got %v, want %v (pending+retry in Redis)", q, got, want)
		}
	}
	if got, want := backlog["low"], float64(pendingLow); got != want {
		t.Errorf("backlog of low: got %v, want %v", got, want)
	}
	// Redis memory: sum(asynq_queue_memory_usage_approx_bytes), an estimate
	// (sampled): within 10 % of Redis's, not twice it.
	if got := sumBy(both, "asynq_queue_memory_usage_approx_bytes", "", nil)[""]; got < 0.9*float64(memory) || got > 1.1*float64(memory) {
		t.Errorf("sum(asynq_queue_memory_usage_approx_bytes): got %v, want about %d", got, memory)
	}
	// Partner deliveries, from Redis for the fleet: counted once.
	if got, want := sumBy(both, "escrowjobs_partner_deliveries_total", "partner", nil)["acme"], float64(delivered); got != want {
		t.Errorf("sum by (partner) (escrowjobs_partner_deliveries_total): got %v, want %v", got, want)
	}
	// Failure rate's counters: the worker's own, once.
	webhook := func(l map[string]string) bool { return l["type"] == "webhook_escrow_status_changed" }
	if got, want := sumBy(both, "escrowjobs_jobs_processed_total", "type", webhook)["webhook_escrow_status_changed"], float64(delivered); got != want {
		t.Errorf("sum by (type) (escrowjobs_jobs_processed_total): got %v, want %v", got, want)
	}
	if got := sumBy(both, "escrowjobs_jobs_failed_total", "type", webhook)["webhook_escrow_status_changed"]; got != 0 {
		t.Errorf("sum by (type) (escrowjobs_jobs_failed_total): got %v, want 0", got)
	}
	// Each cluster-wide family comes from one process kind only.
	for _, name := range []string{"asynq_tasks_enqueued_total", "asynq_queue_latency_seconds", "asynq_queue_memory_usage_approx_bytes", "escrowjobs_partner_deliveries_total"} {
		if n := len(both[0][name]); n != 0 {
			t.Errorf("worker /metrics: got %d %s series, want none (the monitor's)", n, name)
		}
		if len(both[1][name]) == 0 {
			t.Errorf("monitor /metrics: got no %s series, want them", name)
		}
	}
}
