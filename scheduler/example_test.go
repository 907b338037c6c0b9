package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/scheduler"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// A periodic job from a typed constructor, the watchdog alerting a signed
// webhook, run until the process is told to stop.
func ExamplePeriodic() {
	s, err := scheduler.New(scheduler.Config{
		Redis:  asynq.RedisClientOpt{Addr: "127.0.0.1:6379"},
		Logger: slog.Default(),
		Entries: []scheduler.Entry{
			scheduler.Periodic("hourly-capture", "@hourly", tasks.NewStripeCapturePaymentTask,
				payloads.StripeCapturePayment{TransactionID: "esc-123", PaymentIntentID: "pi_3MtwBw"}),
		},
		AlertURL:    "https://alerts.internal.example/escrowjobs",
		AlertSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a real server cancels on SIGTERM
	fmt.Println(s.Run(ctx))
	// Output: <nil>
}

func ExampleLoadEntries() {
	dir, _ := os.MkdirTemp("", "schedule")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "schedule.json")
	_ = os.WriteFile(path, []byte(`{"entries": [{"name": "nightly-audit", "cron": "0 3 * * *", "type": "audit_log_created",
		"payload": {"eventId": "evt-nightly", "actor": "scheduler", "action": "nightly-audit"}}]}`), 0o600)

	_, err := scheduler.LoadEntries(path)
	fmt.Println(err != nil)

	_ = os.WriteFile(path, []byte(`{"entries": [{"name": "nightly-audit", "cron": "0 3 * * *", "type": "audit_log_created",
		"payload": {"eventId": "evt-nightly", "actor": "scheduler", "action": "nightly-audit", "occurredAt": "2026-01-01T03:00:00Z"}}]}`), 0o600)
	entries, err := scheduler.LoadEntries(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range entries {
		fmt.Println(e.Name, e.Cron)
	}
	// Output:
	// true
	// nightly-audit 0 3 * * *
}
