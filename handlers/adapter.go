package handlers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// MaxPayloadBytes is the largest payload a worker decodes; a larger one is
// archived at once. The largest valid payload (an audit event with 8 KiB of
// metadata) is far below it.
const MaxPayloadBytes = 64 << 10

type taskKey struct{}

// Typed adapts fn to an asynq handler for payload type P: decode, validate,
// call. Decode and validation failures wrap asynq.SkipRetry.
func Typed[P payloads.Payload](fn func(ctx context.Context, p P) error) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if n := len(t.Payload()); n > MaxPayloadBytes {
			return fmt.Errorf("%s: payload is %d bytes, the limit is %d: %w", t.Type(), n, MaxPayloadBytes, asynq.SkipRetry)
		}
		p, err := tasks.DecodeLenient[P](t.Payload())
		if err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		if err := payloads.Validate(p); err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return fn(context.WithValue(ctx, taskKey{}, t), p)
	})
}

// jobID is the ID of the job being processed.
func jobID(ctx context.Context) string {
	id, _ := asynq.GetTaskID(ctx)
	return id
}

// writeResult stores v as the job's result (shown by status and the monitor).
// A failure to store it is not a failure of the job: the effect happened.
func writeResult(ctx context.Context, v any) {
	t, ok := ctx.Value(taskKey{}).(*asynq.Task)
	if !ok || t.ResultWriter() == nil {
		return
	}
	if b, err := json.Marshal(v); err == nil {
		_, _ = t.ResultWriter().Write(b)
	}
}
