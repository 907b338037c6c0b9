package scheduler_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/scheduler"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// Two scheduler processes on one Redis, each with the same entries (one
// from a schedule file, one from a typed constructor), run for a few
// periods: each period's job is in Redis exactly once, and both processes
// tried to enqueue it.
func TestTwoSchedulersEnqueueEachPeriodOnce(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t)
	entries, err := scheduler.LoadEntries(writeFile(t, `{"entries": [{
		"name": "audit-tick", "cron": "@every 1s", "type": "audit_log_created",
		"payload": {"eventId": "evt-tick", "actor": "scheduler", "action": "tick", "occurredAt": "2026-01-01T00:00:00Z"}}]}`))
	if err != nil {
		t.Fatalf("LoadEntries: %v", err)
	}
	entries = append(entries, scheduler.Periodic("capture-tick", "@every 1s", tasks.NewStripeCapturePaymentTask,
		payloads.StripeCapturePayment{TransactionID: "esc-1", PaymentIntentID: "pi_123"}))
	cfg := scheduler.Config{Redis: opt, Entries: entries, WatchdogInterval: time.Hour}
	cases := []struct{ entry, taskType, queue string }{
		{"audit-tick", "audit_log_created", payloads.QueueLow},
		{"capture-tick", "stripe_capture_payment", payloads.QueueCritical},
	}
	in := tasks.NewInspector(opt)
	t.Cleanup(func() { in.Close() })
	a, b := start(t, cfg), start(t, cfg)
	// Run until each entry's jobs of three periods are in Redis, however
	// long a loaded machine takes: the contract is per period.
	escrowtest.Eventually(t, "three periods of each entry enqueued", 30*time.Second, func() bool {
		for _, tc := range cases {
			infos, err := in.Asynq().ListPendingTasks(tc.queue, asynq.PageSize(1000))
			if err != nil || len(infos) < 3 {
				return false
			}
		}
		return true
	})
	a.stop()
	b.stop()

	for _, tc := range cases {
		t.Run(tc.entry, func(t *testing.T) {
			infos, err := in.Asynq().ListPendingTasks(tc.queue, asynq.PageSize(1000))
			if err != nil {
				t.Fatalf("list pending %s: %v", tc.queue, err)
			}
			// Every job in Redis, counted by ID, and the period of each.
			prefix := tc.taskType + ":sched-" + tc.entry + "-"
			byID := map[string]int{}
			var periods []int64
			for _, ti := range infos {
				byID[ti.ID]++
				p, err := strconv.ParseInt(strings.TrimPrefix(ti.ID, prefix), 10, 64)
				if !strings.HasPrefix(ti.ID, prefix) || err != nil {
					t.Errorf("job ID %q: want %s<unix seconds>", ti.ID, prefix)
					continue
				}
				periods = append(periods, p)
			}
			for id, n := range byID {
				if n != 1 {
					t.Errorf("job %s: got %d in Redis, want 1", id, n)
				}
			}
			if len(periods) < 3 {
				t.Fatalf("got %d periods enqueued, want at least 3", len(periods))
			}
			first, last := periods[0], periods[0]
			for _, p := range periods {
				first, last = min(first, p), max(last, p)
			}
			if int(last-first+1) != len(periods) {
				t.Errorf("got periods %v, want consecutive seconds", periods)
			}

			// Per period: exactly one process enqueued it, and a period
			// both processes fired had the other refused as a duplicate.
			enqueued, refused := map[string]int{}, map[string]int{}
			for _, r := range append(a.logs.with("periodic job enqueued"), b.logs.with("periodic job enqueued")...) {
				if r.attrs["entry"] == tc.entry {
					enqueued[r.attrs["task_id"].(string)]++
				}
			}
			for _, r := range append(a.logs.with("periodic job already enqueued by another process"),
				b.logs.with("periodic job already enqueued by another process")...) {
				if r.attrs["entry"] == tc.entry {
					refused[r.attrs["task_id"].(string)]++
				}
			}
			if len(enqueued) != len(byID) {
				t.Errorf("got %d jobs logged as enqueued, want %d (those in Redis)", len(enqueued), len(byID))
			}
			// One job per period: exactly one process enqueued it. Both
			// processes fired every period they were both running for (all
			// but the first and the last), the second refused as a duplicate.
			for id := range byID {
				if enqueued[id] != 1 {
					t.Errorf("job %s: got %d processes enqueueing it, want 1", id, enqueued[id])
				}
				if refused[id] > 1 {
					t.Errorf("job %s: got %d duplicates refused, want at most 1", id, refused[id])
				}
				p, _ := strconv.ParseInt(strings.TrimPrefix(id, prefix), 10, 64)
				if refused[id] == 0 && p != first && p != last {
					t.Errorf("job %s: period %d fired by one process only, want both (it is neither the first nor the last)", id, p)
				}
			}
		})
	}
	for _, r := range []*running{a, b} {
		if errs := r.logs.with("periodic job not enqueued"); len(errs) > 0 {
			t.Errorf("got enqueue errors: %v", errs)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}
	good := scheduler.Periodic("capture", "@hourly", tasks.NewStripeCapturePaymentTask,
		payloads.StripeCapturePayment{TransactionID: "esc-1", PaymentIntentID: "pi_123"})
	bad := scheduler.Periodic("capture", "@hourly", tasks.NewStripeCapturePaymentTask,
		payloads.StripeCapturePayment{TransactionID: "esc-1", PaymentIntentID: "not-a-pi"})
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	for _, tc := range []struct {
		name string
		cfg  scheduler.Config
		want string
	}{
		{"no redis", scheduler.Config{}, "Redis is required"},
		{"short interval", scheduler.Config{Redis: opt, WatchdogInterval: time.Millisecond}, "WatchdogInterval"},
		{"negative threshold", scheduler.Config{Redis: opt, ArchivedThreshold: -1}, "ArchivedThreshold"},
		{"url without secret", scheduler.Config{Redis: opt, AlertURL: "http://127.0.0.1:9/alerts"}, "ALERT_WEBHOOK_SECRET"},
		{"secret without url", scheduler.Config{Redis: opt, AlertSecret: secret}, "ALERT_WEBHOOK_URL"},
		{"not a url", scheduler.Config{Redis: opt, AlertURL: "ftp://x", AlertSecret: secret}, "ALERT_WEBHOOK_URL"},
		{"secret without prefix", scheduler.Config{Redis: opt, AlertURL: "http://127.0.0.1:9/", AlertSecret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "want whsec_<base64>"},
		{"secret not base64", scheduler.Config{Redis: opt, AlertURL: "http://127.0.0.1:9/", AlertSecret: "whsec_***"}, "not standard base64"},
		{"bad payload", scheduler.Config{Redis: opt, Entries: []scheduler.Entry{bad}}, `entry "capture": invalid stripe_capture_payment payload: paymentIntentId`},
		{"bad cron", scheduler.Config{Redis: opt, Entries: []scheduler.Entry{{Name: "x", Cron: "61 * * * *", Build: good.Build}}}, `entry "x": cron`},
		{"bad name", scheduler.Config{Redis: opt, Entries: []scheduler.Entry{{Name: "a b", Cron: "@hourly", Build: good.Build}}}, `entry "a b": name`},
		{"no build", scheduler.Config{Redis: opt, Entries: []scheduler.Entry{{Name: "x", Cron: "@hourly"}}}, `entry "x": no Build`},
		{"build drops options", scheduler.Config{Redis: opt, Entries: []scheduler.Entry{{Name: "x", Cron: "@hourly",
			Build: func(time.Time, ...tasks.Option) (*tasks.Task, error) {
				return tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-1", PaymentIntentID: "pi_1"})
			}}}}, "dedupe key is missing"},
		{"duplicate names", scheduler.Config{Redis: opt, Entries: []scheduler.Entry{good, good}}, `entry "capture": name: is used twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scheduler.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
				t.Errorf("error %q quotes the secret", err)
			}
		})
	}
	if _, err := scheduler.New(scheduler.Config{Redis: opt, Entries: []scheduler.Entry{good}}); err != nil {
		t.Errorf("good config: got %v, want nil", err)
	}
}
