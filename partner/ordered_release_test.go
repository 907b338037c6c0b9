package partner_test

// The less common ways an ordered partner's head is resolved: a head
// delivered whose release was lost, a later event that must wait on its
// last attempt, a head answered with a permanent 4xx. Real workers and
// real Redis, as in ordered_test.go.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/internal/eventorder"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// eventWithRetries enqueues a status event of escrow tx to acme with
// maxRetry retries and returns its job ID.
func (w *orderWorld) eventWithRetries(eventID, tx string, maxRetry int) string {
	w.t.Helper()
	task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
		EventID: eventID, PartnerID: "acme", TransactionID: tx, PreviousStatus: payloads.StatusPending,
		Status: payloads.StatusFunded, OccurredAt: "2026-12-03T12:00:00Z",
	})
	if err != nil {
		w.t.Fatal(err)
	}
	opts := append(task.Options(), asynq.MaxRetry(maxRetry))
	stored := tasks.Stored(asynq.NewTask(task.Type(), task.Payload(), opts...), task.ID, task.Queue, opts...)
	id, err := w.client.Enqueue(context.Background(), stored)
	if err != nil {
		w.t.Fatalf("enqueue %s: %v", eventID, err)
	}
	return id
}

// score is job id's score in the order of escrow tx to acme (positive:
// open, negative: released).
func (w *orderWorld) score(tx, id string) float64 {
	w.t.Helper()
	s, err := w.rc.ZScore(context.Background(), eventorder.Key(tx, "acme"), id).Result()
	if err != nil {
		w.t.Fatalf("score of %s in %s's order: %v", id, tx, err)
	}
	return s
}

// A head that was delivered (asynq keeps its job as completed) but whose
// release was lost (the release's write failed) is an orphan: the next
// event drops it and goes, and the head is not sent again.
func TestCompletedHeadIsDropped(t *testing.T) {
	w := newOrderWorld(t, localRedis(t), true, time.Hour)
	w.startWorker()
	ctx := context.Background()
	c1 := w.event("evt-c1", "esc-c")
	w.awaitDelivered(30*time.Second, "evt-c1")
	escrowtest.AwaitState(t, w.insp, c1, "completed", 30*time.Second)
	seq := w.score("esc-c", c1)
	if seq >= 0 {
		t.Fatalf("evt-c1's score after delivery: got %v, want it released (negative)", seq)
	}
	// The release is lost: evt-c1 is open again although its job completed.
	if err := w.rc.ZAddXX(ctx, eventorder.Key("esc-c", "acme"), redis.Z{Score: -seq, Member: c1}).Err(); err != nil {
		t.Fatal(err)
	}

	w.event("evt-c2", "esc-c")
	w.awaitDelivered(60*time.Second, "evt-c2")
	if got := w.score("esc-c", c1); got >= 0 {
		t.Errorf("evt-c1's score after evt-c2's delivery: got %v, want it dropped (negative)", got)
	}
	if got := w.requested("evt-c1"); got != 1 {
		t.Errorf("evt-c1: got %d requests, want 1 (the orphan is dropped, not sent again)", got)
	}
	w.checkInOrder("evt-c1", "evt-c2")
}

// An event that finds an earlier one open on its last attempt is not
// sent: it becomes a dead letter (ErrWaitsInOrder) whose redelivery takes
// no step of its schedule, is brought back once the head is released,
// and is delivered after it, once.
func TestEventWaitingOnItsLastAttemptIsRedeliveredAfterTheHead(t *testing.T) {
	w := newOrderWorld(t, localRedis(t), true, 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, time.Second, time.Second)
	// The fallback recheck far off: on a loaded machine it must not bring
	// evt-l2 back before the head's release does.
	w.recheck = 10 * time.Minute
	down := make(chan struct{})
	w.answer(func(id string) bool {
		select {
		case <-down:
			return false
		default:
			return true
		}
	})
	ctx := context.Background()
	w.eventWithRetries("evt-l1", "esc-l", 1)
	l2 := w.eventWithRetries("evt-l2", "esc-l", 0) // its first attempt is its last
	w.startWorker()

	e := w.awaitOpenDeadLetter(l2, 30*time.Second)
	if !strings.Contains(e.Error, partner.ErrWaitsInOrder.Error()) {
		t.Errorf("evt-l2's dead letter error: got %q, want it to say %q", e.Error, partner.ErrWaitsInOrder)
	}
	var due string
	escrowtest.Eventually(t, "evt-l2's redelivery scheduled", 30*time.Second, func() bool {
		ms, err := w.rc.ZRange(ctx, "escrowjobs:redelivery:due", 0, -1).Result()
		if err != nil {
			return false
		}
		for _, m := range ms {
			var d struct {
				ID string `json:"id"`
				R  string `json:"r"`
			}
			if json.Unmarshal([]byte(m), &d) == nil && d.ID == l2 {
				due = d.R
				return true
			}
		}
		return false
	})
	if !strings.Contains(due, "earlier event") {
		t.Errorf("evt-l2's redelivery reason: got %q, want it waiting for an earlier event (no step of its schedule)", due)
	}
	if n, err := w.rc.Exists(ctx, "escrowjobs:partner:{acme}:step:"+l2).Result(); err != nil || n != 0 {
		t.Errorf("evt-l2's redelivery step key: got %d (%v), want none: waiting spends no step", n, err)
	}
	if n := w.requested("evt-l2"); n != 0 {
		t.Fatalf("evt-l2: got %d requests while evt-l1 was not delivered, want none", n)
	}

	close(down)
	w.awaitDelivered(90*time.Second, "evt-l1", "evt-l2")
	w.checkInOrder("evt-l1", "evt-l2")
	if got := w.requested("evt-l2"); got != 1 {
		t.Errorf("evt-l2: got %d requests, want 1", got)
	}
	escrowtest.AwaitState(t, w.insp, l2, "completed", 30*time.Second)
	// Brought back by the head's release (not by the fallback recheck).
	if r, err := w.ledger.Get(ctx, l2); err != nil || r.State != deadletter.StateRequeued || r.Actor != partner.ActorRedelivery || !strings.Contains(r.Reason, "was released") {
		t.Errorf("evt-l2's dead letter: got %s by %q (%q) (%v), want requeued by %q because the earlier event was released", r.State, r.Actor, r.Reason, err, partner.ActorRedelivery)
	}
}

// A head answered with a permanent 4xx is a final dead letter at once:
// the later events of its escrow are delivered, and the head is not
// redelivered.
func TestPermanentFailureOfTheHeadReleasesTheEscrowsLaterEvents(t *testing.T) {
	w := newOrderWorld(t, localRedis(t), true, 300*time.Millisecond)
	w.recv.Answer(func(n int) escrowtest.Answer {
		if w.recv.Requests()[n].ID == "evt-p1" {
			return escrowtest.Answer{Status: 422}
		}
		return escrowtest.Answer{}
	})
	w.startWorker()
	p1 := w.event("evt-p1", "esc-p")
	w.event("evt-p2", "esc-p")
	w.event("evt-p3", "esc-p")
	w.awaitDelivered(60*time.Second, "evt-p2", "evt-p3")
	w.checkInOrder("evt-p1", "evt-p2", "evt-p3")
	e := w.awaitOpenDeadLetter(p1, 30*time.Second)
	if e.State != deadletter.StateOpen {
		t.Errorf("evt-p1's dead letter: got %v, want open", e.State)
	}
	if got := w.score("esc-p", p1); got >= 0 {
		t.Errorf("evt-p1's score: got %v, want released (negative)", got)
	}
	if got := w.requested("evt-p1"); got != 1 {
		t.Errorf("evt-p1: got %d requests, want 1 (a permanent failure is neither retried nor redelivered)", got)
	}
}
