package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/escrowjobs/escrowjobs/tasks"
)

// InspectorDeadLetters is DeadLetters over asynq's archive through
// tasks.Inspector, until the dead-letter ledger replaces it. The archive
// has no actor or reason to record: they are logged.
type InspectorDeadLetters struct {
	Inspector *tasks.Inspector
	Logger    *slog.Logger
}

// ListOpen lists the archived jobs of taskType for partner.
func (d InspectorDeadLetters) ListOpen(_ context.Context, taskType, partner string) ([]DeadLetter, error) {
	k, err := tasks.Lookup(taskType)
	if err != nil {
		return nil, err
	}
	var out []DeadLetter
	for page := 1; ; page++ {
		ts, err := d.Inspector.Asynq().ListArchivedTasks(k.Queue, asynq.PageSize(500), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dead letters: queue %s: %w", k.Queue, err)
		}
		for _, t := range ts {
			if t.Type != taskType {
				continue
			}
			var p struct {
				PartnerID string `json:"partnerId"`
			}
			_ = json.Unmarshal(t.Payload, &p)
			if partner != "" && p.PartnerID != partner {
				continue
			}
			out = append(out, DeadLetter{ID: t.ID, Type: t.Type, Partner: p.PartnerID, Error: t.LastErr})
		}
		if len(ts) < 500 {
			return out, nil
		}
	}
}

// Requeue requeues the archived job id with its full budget.
func (d InspectorDeadLetters) Requeue(ctx context.Context, id, actor, reason string) error {
	_, err := d.Inspector.Requeue(ctx, id)
	switch {
	case err == nil:
		if d.Logger != nil {
			d.Logger.InfoContext(ctx, "dead letter requeued", "task_id", id, "actor", actor, "reason", reason)
		}
		return nil
	case errors.Is(err, tasks.ErrNotArchived):
		if j, serr := d.Inspector.Status(ctx, id); serr == nil && j.State == asynq.TaskStateActive.String() {
			return fmt.Errorf("requeue %s: %w", id, ErrStillRunning)
		}
		return &NotOpenError{Err: err}
	case errors.Is(err, tasks.ErrNotFound):
		return &NotOpenError{Err: err}
	}
	return err
}
