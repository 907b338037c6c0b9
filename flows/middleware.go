package flows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// Bounds of an advancement's own retries (Redis briefly unreachable).
const (
	advanceFirstPause = 50 * time.Millisecond
	advanceMaxPause   = time.Second
	// advanceMargin is left of the job's deadline for asynq to record
	// the outcome.
	advanceMargin = 2 * time.Second
	// advanceMaxTime bounds the retries of a job without a deadline.
	advanceMaxTime = 10 * time.Second
	// attemptTimeout bounds one try (a script and the enqueues).
	attemptTimeout = tasks.EnqueueTimeout
)

// Middleware runs flows on the worker: put it on the handler the worker
// runs (handlers.NewServeMux's mux.Use, inside the worker's retry gate).
//
// It runs start jobs (StartType, from Add) as Start does. For a job of a
// flow (HeaderFlow, HeaderStep), after the step's handler succeeded and
// before it returns success to asynq, it advances the flow: the step is
// completed and every step whose dependencies have all completed is
// enqueued with c. When that fails (Redis unreachable) it tries again for
// a while within the job's deadline, then returns the error, so the step
// is retried: its side effect is idempotent and the advancement repeats.
// Jobs of no flow pass through.
//
// A retry of a step that its state already shows completed (the
// advancement ran, but the attempt failed after it) does not run the
// handler again: it only advances the flow (completedBefore).
//
// Because asynq marks the job done only after this returns, a crash
// anywhere in between makes asynq run the step again, which repeats the
// advancement: the flow's script returns a dependent that is still
// pending again, and asynq's job-ID dedupe refuses it when it was
// enqueued already; a dependent that completed is not returned. So no
// step runs twice and none is left waiting.
func (s *Store) Middleware(c *tasks.Client) func(asynq.Handler) asynq.Handler {
	s.client.CompareAndSwap(nil, c)
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			if t.Type() == StartType {
				return s.within(ctx, func(ctx context.Context) error { return s.runStart(ctx, c, t.Payload()) })
			}
			flowID, step, ok := Of(t.Headers())
			if !ok {
				return next.ProcessTask(ctx, t)
			}
			if s.completedBefore(ctx, flowID, step) {
				s.cfg.log.LogAttrs(ctx, slog.LevelInfo, "step completed on an earlier attempt; not run again, only the flow advanced",
					jobAttrs(ctx, flowID, step)...)
				return s.Advance(ctx, c, flowID, step)
			}
			if err := next.ProcessTask(ctx, t); err != nil {
				return err
			}
			return s.Advance(ctx, c, flowID, step)
		})
	}
}

// completedBefore reports whether a retry of step's job finds the step
// completed in the flow's state: its handler succeeded and the
// advancement script ran on an earlier attempt, but the attempt failed
// after it (WaitReplicas not acknowledged while a promoted master had no
// replica yet, Redis gone before the answer). Running the handler again
// would repeat a side effect that already happened (an e-mail, a partner
// delivery), so the retry only advances the flow. A first attempt costs
// nothing; a retry one HGET. A read that fails runs the step, as before.
func (s *Store) completedBefore(ctx context.Context, flowID, step string) bool {
	if n, _ := asynq.GetRetryCount(ctx); n == 0 {
		return false
	}
	st, err := s.rc.HGet(ctx, flowKey(flowID), "s:"+step).Result()
	return err == nil && st == StepCompleted
}

// Advance records that step's job completed and enqueues with c the steps
// that became due, retrying within ctx's deadline. Middleware calls it;
// it is idempotent. A flow or step that no longer exists (expired) is
// logged and not an error.
func (s *Store) Advance(ctx context.Context, c *tasks.Client, flowID, step string) error {
	err := s.within(ctx, func(ctx context.Context) error { return s.advance(ctx, c, flowID, step) })
	if errors.Is(err, ErrNotFound) {
		s.cfg.log.LogAttrs(ctx, slog.LevelWarn, "step of a flow that no longer exists (expired?); nothing to advance",
			append(jobAttrs(ctx, flowID, step), slog.String("error", err.Error()))...)
		return nil
	}
	if err != nil {
		s.cfg.log.LogAttrs(ctx, slog.LevelError, "flow advancement failed; the step runs again",
			append(jobAttrs(ctx, flowID, step), slog.String("error", payloads.MaskEmailsString(err.Error())))...)
		return fmt.Errorf("step %s done, but advancing the flow failed: %w", step, err)
	}
	return nil
}

func (s *Store) advance(ctx context.Context, c *tasks.Client, flowID, step string) error {
	tr, err := s.apply(ctx, c.ReplicasToWait(), "complete", flowID, step, "", traceHeaders(ctx))
	if err != nil {
		return err
	}
	if tr.old != tr.now && s.cfg.log.Enabled(ctx, slog.LevelInfo) {
		s.cfg.log.LogAttrs(ctx, slog.LevelInfo, "flow "+tr.now, append(jobAttrs(ctx, flowID, step), slog.String("was", tr.old))...)
	}
	if len(tr.ready) == 0 && tr.inlined == 0 {
		return nil
	}
	if err := s.at("advanced"); err != nil {
		return err
	}
	if len(tr.ready) == 0 {
		return nil
	}
	return s.enqueueAll(ctx, c, flowID, tr.ready)
}

// within runs f until it succeeds, returns ErrNotFound or a permanent
// error, or the time left in ctx (less advanceMargin) runs out.
func (s *Store) within(ctx context.Context, f func(context.Context) error) error {
	until := time.Now().Add(advanceMaxTime)
	if dl, ok := ctx.Deadline(); ok {
		until = dl.Add(-advanceMargin)
	}
	pause := advanceFirstPause
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := f(actx)
		cancel()
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, asynq.SkipRetry) || ctx.Err() != nil {
			return err
		}
		if time.Until(until) < pause || !retry.Wait(ctx, pause) {
			return err
		}
		pause = min(2*pause, advanceMaxPause)
	}
}

// jobAttrs are the log attributes of the job in ctx and its flow step.
func jobAttrs(ctx context.Context, flowID, step string) []slog.Attr {
	id, _ := asynq.GetTaskID(ctx)
	q, _ := asynq.GetQueueName(ctx)
	n, _ := asynq.GetRetryCount(ctx)
	typ, _, _ := cutID(id)
	return []slog.Attr{slog.String("task_type", typ), slog.String("task_id", id), slog.String("queue", q),
		slog.Int("attempt", n+1), slog.String("flow_id", flowID), slog.String("step", step)}
}
