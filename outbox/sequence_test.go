package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// The relay enqueues one escrow's partner events in the order their
// transactions committed, even with many enqueues in flight, so each
// escrow's sequence grows in commit order.
func TestRelayNumbersEachEscrowsEventsInCommitOrder(t *testing.T) {
	e := setup(t, "")
	const escrows, perEscrow = 3, 10
	var order [escrows][]*tasks.Task
	for i := range perEscrow {
		for x := range escrows { // interleaved, one transaction each
			task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
				EventID: fmt.Sprintf("evt-commit-%d-%d", x, i), PartnerID: "acme", TransactionID: fmt.Sprintf("esc-commit-%d", x),
				PreviousStatus: payloads.StatusPending, Status: payloads.StatusFunded, OccurredAt: "2026-12-03T12:00:00Z",
			})
			if err != nil {
				t.Fatal(err)
			}
			e.add(t, task)
			order[x] = append(order[x], task)
		}
	}
	e.startRelay(t, outbox.RelayConfig{Concurrency: 16, BatchSize: 100})
	escrowtest.Eventually(t, "every row relayed", 30*time.Second, func() bool { return e.backlog(t) == 0 })
	for x, ts := range order {
		e.wantSequences(t, fmt.Sprintf("esc-commit-%d", x), ts)
	}
}

// wantSequences checks that the relayed jobs of one escrow, in commit
// order, carry the sequences 1, 2, 3, ….
func (e *env) wantSequences(t *testing.T, escrow string, ts []*tasks.Task) {
	t.Helper()
	for i, task := range ts {
		info, err := e.inspect.GetTaskInfo(task.Queue, task.ID)
		if err != nil {
			t.Fatalf("%s: %v", task.ID, err)
		}
		var p payloads.WebhookEscrowStatusChanged
		if err := json.Unmarshal(info.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if want := int64(i + 1); p.Sequence != want {
			t.Errorf("%s's event %d (%s): got sequence %d, want %d", escrow, i, task.ID, p.Sequence, want)
		}
	}
}

// gatedClient holds the enqueue of one job until a job of held is
// attempted or a second has passed, and counts the attempts of held jobs.
type gatedClient struct {
	outbox.Enqueuer
	gate    string          // the job ID held at the gate
	held    map[string]bool // job IDs that open the gate when attempted
	opened  chan struct{}
	once    sync.Once
	mu      sync.Mutex
	earlyOf []string // held jobs attempted while the gate was closed
	closed  bool
}

func (g *gatedClient) Enqueue(ctx context.Context, t *tasks.Task) (string, error) {
	if g.held[t.ID] {
		g.mu.Lock()
		if !g.closed {
			g.earlyOf = append(g.earlyOf, t.ID)
		}
		g.mu.Unlock()
		g.once.Do(func() { close(g.opened) })
	}
	if t.ID == g.gate {
		select {
		case <-g.opened:
		case <-time.After(time.Second):
		}
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
	}
	return g.Enqueuer.Enqueue(ctx, t)
}

// Two batches in flight (two claimers) split one escrow's events: while
// the batch holding the first ones is still enqueueing, the other leaves
// its later ones in the table (holdBack) instead of numbering them first.
func TestLaterEventsWaitForTheBatchHoldingEarlierOnes(t *testing.T) {
	e := setup(t, "")
	const n = 6
	var ts []*tasks.Task
	for i := range n {
		task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
			EventID: fmt.Sprintf("evt-split-%d", i), PartnerID: "acme", TransactionID: "esc-split",
			PreviousStatus: payloads.StatusPending, Status: payloads.StatusFunded, OccurredAt: "2026-12-03T12:00:00Z",
		})
		if err != nil {
			t.Fatal(err)
		}
		e.add(t, task)
		ts = append(ts, task)
	}
	// The first batch (events 0–2) stops at event 0 until a later event is
	// attempted: without holdBack the second batch (events 3–5) numbers
	// event 3 first.
	g := &gatedClient{Enqueuer: e.client, gate: ts[0].ID, opened: make(chan struct{}), held: map[string]bool{}}
	for _, task := range ts[3:] {
		g.held[task.ID] = true
	}
	r := e.startRelay(t, outbox.RelayConfig{Client: g, Claimers: 2, BatchSize: 3, Concurrency: 1})
	escrowtest.Eventually(t, "every row relayed", 30*time.Second, func() bool { return e.backlog(t) == 0 })
	e.wantSequences(t, "esc-split", ts)
	g.mu.Lock()
	early := g.earlyOf
	g.mu.Unlock()
	if len(early) > 0 {
		t.Errorf("got later events %v enqueued while event 0 was still being enqueued, want none", early)
	}
	if got := r.Counts().HeldBack; got == 0 {
		t.Errorf("got HeldBack %d, want > 0: the second batch never met the first one's events", got)
	}
}
