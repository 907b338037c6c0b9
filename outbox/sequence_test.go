package outbox_test

import (
	"encoding/json"
	"fmt"
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
				t.Errorf("esc-commit-%d's event %d (%s): got sequence %d, want %d", x, i, task.ID, p.Sequence, want)
			}
		}
	}
}
