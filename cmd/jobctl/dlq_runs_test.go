package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
)

// TestDeadLetterShowPrintsEveryRun: a job requeued and dead-lettered
// again has two entries in the ledger; dlq show prints both, each with
// its fate (text and --json).
func TestDeadLetterShowPrintsEveryRun(t *testing.T) {
	f := setup(t)
	l, err := deadletter.OpenFile(f.env["DEAD_LETTER_PATH"])
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	id := "stripe_capture_payment:capture-pi_77"
	first := deadletter.Entry{ID: id, Type: "stripe_capture_payment", Queue: "critical", Payload: []byte(`{"transactionId":"esc-77","paymentIntentId":"pi_77"}`),
		Error: "stripe: timeout", Attempts: 4, Why: deadletter.WhyExhausted, FailedAt: time.Now().Add(-time.Hour)}
	if _, err := l.Record(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, err := l.MarkRequeued(ctx, id, deadletter.Resolution{Actor: "alice", Reason: "stripe is back", At: time.Now().Add(-50 * time.Minute), Run: "r2"}); err != nil {
		t.Fatal(err)
	}
	again := first
	again.Run, again.Error, again.Why, again.Attempts, again.FailedAt = "r2", "stripe: charge_expired_for_capture", deadletter.WhyPermanent, 1, time.Now().Add(-10*time.Minute)
	if _, err := l.Record(ctx, again); err != nil {
		t.Fatal(err)
	}

	r := f.run("dlq", "show", id)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	runs := r.stdout[strings.Index(r.stdout, "runs (")+1:]
	if !strings.Contains(r.stdout, "runs (2, newest first):") {
		t.Fatalf("got %q, want a table of 2 runs", r.stdout)
	}
	lines := strings.Split(strings.TrimSpace(runs), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], "r2") || !strings.Contains(lines[2], "open") ||
		!strings.Contains(lines[3], "first") || !strings.Contains(lines[3], "requeued") || !strings.Contains(lines[3], "alice") || !strings.Contains(lines[3], "stripe is back") {
		t.Errorf("runs: got\n%s\nwant r2 open, then the first run requeued by alice", runs)
	}

	r = f.run("--json", "dlq", "show", id)
	s := decode[struct {
		ID, State string
		Runs      []struct{ Run, State, Actor, Reason string }
	}](t, r.stdout)
	if s.ID != id || s.State != "open" || len(s.Runs) != 2 || s.Runs[0].Run != "r2" || s.Runs[1].State != "requeued" || s.Runs[1].Actor != "alice" {
		t.Errorf("--json: got %+v", s)
	}
}
