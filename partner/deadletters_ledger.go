package partner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/repair"
)

// LedgerDeadLetters is DeadLetters over the dead-letter ledger
// (repair.Desk): redelivery lists the open dead letters of a partner
// from the ledger, so a job asynq has dropped from its archive is still
// redelivered, and every requeue is recorded there with its actor
// ("redelivery", "api", …) and reason.
type LedgerDeadLetters struct {
	Desk *repair.Desk
}

// listPage is how many dead letters one ledger read returns.
const listPage = 500

// ListOpen lists the open dead letters of taskType for partner ("" for
// every partner), newest failure first.
func (d LedgerDeadLetters) ListOpen(ctx context.Context, taskType, partner string) ([]DeadLetter, error) {
	f := deadletter.Filter{Type: taskType, PartnerID: partner, State: deadletter.StateOpen}
	var out []DeadLetter
	cursor := ""
	for {
		page, err := d.Desk.List(ctx, f, cursor, listPage)
		if err != nil {
			return nil, fmt.Errorf("dead letters of %s: %w", taskType, err)
		}
		for _, e := range page.Entries {
			var p struct {
				PartnerID string `json:"partnerId"`
			}
			_ = json.Unmarshal(e.Payload, &p)
			out = append(out, DeadLetter{ID: e.ID, Type: e.Type, Partner: p.PartnerID, Error: e.Error})
		}
		if page.Next == "" {
			return out, nil
		}
		cursor = page.Next
	}
}

// Requeue runs dead letter id again with its full budget under the same
// job ID and records actor and reason in the ledger. A dead letter that is
// no longer open (requeued or discarded meanwhile, or unknown), or whose
// discard got there first (repair.ErrConflict), is a *NotOpenError; one
// asynq has not archived yet is ErrStillRunning.
func (d LedgerDeadLetters) Requeue(ctx context.Context, id, actor, reason string) error {
	_, err := d.Desk.Requeue(ctx, id, actor, reason)
	if errors.Is(err, repair.ErrStillActive) {
		return fmt.Errorf("requeue %s: %w: %w", id, ErrStillRunning, err)
	}
	if errors.Is(err, deadletter.ErrNotOpen) || errors.Is(err, deadletter.ErrNotFound) || errors.Is(err, repair.ErrConflict) {
		return &NotOpenError{Err: err}
	}
	return err
}
