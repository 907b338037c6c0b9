package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Every body of an escrow's events carries a sequence that grows in the
// order the events were created, one per escrow, and is the same on every
// attempt and on a redelivery, like the webhook-id. The receiver verifies
// each request; the second event of esc-seq-a fails its first run's four
// attempts (a dead letter), is redelivered and delivered then.
func TestSequenceIsInCreationOrderAndStableAcrossAttempts(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	recv := escrowtest.StartReceiver(t, secret)
	e := setupPartners(t, map[string]regEntry{"acme": {URL: recv.URL, Secret: secret}},
		map[string]string{"WEBHOOK_BREAKER_FAILURES": "1000", "WEBHOOK_REDELIVERY_SCHEDULE": "1s"})
	recv.FailNext("evt-seq-a2", 5) // four attempts, then the redelivery's first
	e.start()
	events := []struct{ id, tx, prev, status string }{
		{"evt-seq-a1", "esc-seq-a", payloads.StatusPending, payloads.StatusFunded},
		{"evt-seq-b1", "esc-seq-b", payloads.StatusPending, payloads.StatusFunded},
		{"evt-seq-a2", "esc-seq-a", payloads.StatusFunded, payloads.StatusDisputed},
		{"evt-seq-a3", "esc-seq-a", payloads.StatusDisputed, payloads.StatusResolved},
		{"evt-seq-b2", "esc-seq-b", payloads.StatusFunded, payloads.StatusReleased},
	}
	for _, ev := range events {
		task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
			EventID: ev.id, PartnerID: "acme", TransactionID: ev.tx, PreviousStatus: ev.prev, Status: ev.status,
			OccurredAt: "2026-12-03T12:00:00Z",
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Enqueue(context.Background(), task); err != nil {
			t.Fatal(err)
		}
	}
	escrowtest.Eventually(t, "every event delivered, the failing one after its redelivery", 60*time.Second, func() bool {
		return recv.Count("evt-seq-a2") >= 6 && recv.Count("evt-seq-a1") > 0 && recv.Count("evt-seq-a3") > 0 &&
			recv.Count("evt-seq-b1") > 0 && recv.Count("evt-seq-b2") > 0
	})
	want := map[string]int64{"evt-seq-a1": 1, "evt-seq-a2": 2, "evt-seq-a3": 3, "evt-seq-b1": 1, "evt-seq-b2": 2}
	attempts := map[string]int{}
	for _, d := range recv.Received() {
		var b struct {
			Data struct {
				TransactionID string `json:"transactionId"`
				Sequence      *int64 `json:"sequence"`
			} `json:"data"`
		}
		if err := json.Unmarshal(d.Body, &b); err != nil || b.Data.Sequence == nil {
			t.Errorf("%s: body %s has no data.sequence (%v)", d.ID, d.Body, err)
			continue
		}
		attempts[d.ID]++
		if got := *b.Data.Sequence; got != want[d.ID] {
			t.Errorf("%s attempt %d (%s): got sequence %d, want %d", d.ID, attempts[d.ID], b.Data.TransactionID, got, want[d.ID])
		}
	}
	if attempts["evt-seq-a2"] < 6 {
		t.Errorf("evt-seq-a2: got %d requests, want at least 6 (four attempts, a redelivery's failed and delivered one)", attempts["evt-seq-a2"])
	}
}
