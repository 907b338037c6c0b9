package deadletter_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
)

// A dead letter is recorded once, listed newest first with its payload
// masked for display, and resolved with who and why.
func ExampleFile() {
	dir, _ := os.MkdirTemp("", "ledger")
	defer os.RemoveAll(dir)
	l, err := deadletter.OpenFile(filepath.Join(dir, "dead-letters.jsonl"))
	if err != nil {
		panic(err)
	}
	defer l.Close()
	ctx := context.Background()
	e := deadletter.Entry{
		ID: "send_release_email:escrow-esc-1-release-ab12", Type: "send_release_email", Queue: "default",
		Payload: []byte(`{"transactionId":"esc-1","recipientEmail":"jane@example.com"}`),
		Error:   "smtp: 550 mailbox unavailable", Attempts: 1, Why: deadletter.WhyPermanent,
		FailedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	first, _ := l.Record(ctx, e)
	again, _ := l.Record(ctx, e) // the sweep reporting the same archival
	fmt.Println("recorded:", first, again)

	page, _ := l.List(ctx, deadletter.Filter{State: deadletter.StateOpen}, "", 10)
	shown := page.Entries[0].Masked()
	fmt.Println(shown.ID, shown.State, string(shown.Payload))

	l.MarkDiscarded(ctx, e.ID, deadletter.Resolution{Actor: "alice", Reason: "refunded by hand", At: time.Now()})
	got, _ := l.Get(ctx, e.ID)
	fmt.Println(got.State, "by", got.Actor+":", got.Reason)
	// Output:
	// recorded: true false
	// send_release_email:escrow-esc-1-release-ab12 open {"transactionId":"esc-1","recipientEmail":"j***@example.com"}
	// discarded by alice: refunded by hand
}
