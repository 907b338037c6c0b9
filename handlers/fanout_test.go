package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// recordingEnqueuer keeps every task it is given.
type recordingEnqueuer struct {
	mu    sync.Mutex
	tasks []*tasks.Task
}

func (r *recordingEnqueuer) Enqueue(_ context.Context, t *tasks.Task) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tasks = append(r.tasks, t)
	return t.ID, nil
}

// TestFanOutFitsAtTheIDLimit runs a notify_dispute_resolved whose disputeId
// and partnerId are 64 characters (the validator's limit) through the mux,
// for each resolution: every child job is enqueued, the webhook's eventId
// fits the 64-character ID rule, and a second run (later clock) builds the
// same job IDs, so the children's dedupe holds across attempts.
func TestFanOutFitsAtTheIDLimit(t *testing.T) {
	id64 := strings.Repeat("d", 60) + "-9_."
	partner64 := "partner-" + strings.Repeat("p", 56)
	if len(id64) != 64 || len(partner64) != 64 {
		t.Fatalf("test setup: lengths %d and %d, want 64", len(id64), len(partner64))
	}
	for _, resolution := range []string{payloads.ResolutionReleaseToSeller, payloads.ResolutionRefundToBuyer, payloads.ResolutionSplit} {
		t.Run(resolution, func(t *testing.T) {
			p := payloads.NotifyDisputeResolved{DisputeID: id64, TransactionID: strings.Repeat("t", 64), Resolution: resolution,
				BuyerEmail: "jane@bücher.de", SellerEmail: `"jane doe"@example.com`, PartnerID: partner64}
			body, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var runs [2][]string
			for run := range runs {
				enq := &recordingEnqueuer{}
				clock := time.Date(2026, 11, 29, 10, run, 0, 0, time.UTC)
				deps := escrowtest.NewAdapters().Deps(enq, slog.New(slog.DiscardHandler))
				deps.Now = func() time.Time { return clock }
				mux, err := handlers.NewServeMux(deps)
				if err != nil {
					t.Fatal(err)
				}
				if err := mux.ProcessTask(context.Background(), asynq.NewTask(p.TaskType(), body)); err != nil {
					t.Fatalf("run %d: got %v, want nil", run, err)
				}
				for _, task := range enq.tasks {
					runs[run] = append(runs[run], task.ID)
				}
				if got, want := len(enq.tasks), 3; got != want {
					t.Fatalf("run %d: got %d child jobs %v, want %d (two e-mails and the webhook)", run, got, runs[run], want)
				}
				var wh payloads.WebhookEscrowStatusChanged
				if err := json.Unmarshal(enq.tasks[2].Payload(), &wh); err != nil {
					t.Fatal(err)
				}
				if err := payloads.Validate(wh); err != nil || len(wh.EventID) > 64 || wh.PartnerID != partner64 {
					t.Errorf("run %d: webhook eventId %q (%d chars), partner %q: got %v, want a valid payload", run, wh.EventID, len(wh.EventID), wh.PartnerID, err)
				}
			}
			if strings.Join(runs[0], " ") != strings.Join(runs[1], " ") {
				t.Errorf("job IDs: got %v then %v, want the same IDs on every attempt", runs[0], runs[1])
			}
		})
	}
}

// TestFanOutIDsAreDistinct: the hashed eventId of a long disputeId never
// equals the natural one of another dispute, and two long disputes differ.
func TestFanOutIDsAreDistinct(t *testing.T) {
	n := handlers.NewNotify(&recordingEnqueuer{}, nil)
	event := func(disputeID string) string {
		ts, err := n.FanOut(payloads.NotifyDisputeResolved{DisputeID: disputeID, TransactionID: "t1", Resolution: "split",
			BuyerEmail: "b@example.com", SellerEmail: "s@example.com", PartnerID: "acme"})
		if err != nil {
			t.Fatalf("%s: %v", disputeID, err)
		}
		return ts[2].ID
	}
	cases := []struct{ a, b string }{
		{strings.Repeat("a", 64), strings.Repeat("a", 63) + "b"},
		{strings.Repeat("a", 64), strings.Repeat("a", 48)},
		{"d1", strings.Repeat("x", 60)},
	}
	for _, c := range cases {
		if ea, eb := event(c.a), event(c.b); ea == eb {
			t.Errorf("disputes %q and %q: got the same webhook job %q, want different ones", c.a, c.b, ea)
		}
	}
	if got, want := event("d1"), "webhook_escrow_status_changed:event-dispute-d1-resolved"; got != want {
		t.Errorf("short disputeId: got %q, want %q (natural IDs unchanged)", got, want)
	}
}

// TestFanOutValidationFailureIsPermanent: a child job that cannot be built
// is archived at once (asynq.SkipRetry) with the field named, not retried.
func TestFanOutValidationFailureIsPermanent(t *testing.T) {
	enq := &recordingEnqueuer{}
	n := handlers.NewNotify(enq, nil)
	// Called directly, past the adapter's validation: the child e-mail
	// job rejects the address.
	err := n.Resolved(context.Background(), payloads.NotifyDisputeResolved{DisputeID: "d1", TransactionID: "t1",
		Resolution: "split", BuyerEmail: "not-an-address", SellerEmail: "s@example.com"})
	if err == nil || !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), "recipientEmail") {
		t.Errorf("got %v, want a permanent error naming recipientEmail", err)
	}
	if len(enq.tasks) != 0 {
		t.Errorf("got %d jobs enqueued, want none", len(enq.tasks))
	}
}
