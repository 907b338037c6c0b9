package worker

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
)

// SweepInterval is how often a worker looks for jobs asynq archived
// without asking it.
const SweepInterval = 30 * time.Second

// sweptKey records which lease-expired archives are in the dead-letter log
// already, across every worker process.
const sweptKey = "escrowjobs:deadletter:swept"

// leaseExpired is asynq's error for a job whose worker died; when that was
// the job's last attempt, asynq's recoverer archives it directly and no
// error handler runs.
var leaseExpired = asynq.ErrLeaseExpired.Error()

// sweep writes to the dead-letter log every job asynq's recoverer archived
// (its worker died during the last attempt), once across all processes.
// Every other archived job was written by handleError when it failed.
func (w *Worker) sweep(ctx context.Context, insp *asynq.Inspector) int {
	queues, err := insp.Queues()
	if err != nil {
		w.cfg.Logger.Warn("dead-letter sweep: list queues", "error", err)
		return 0
	}
	n := 0
	for _, q := range queues {
		ts, err := insp.ListArchivedTasks(q, asynq.PageSize(100))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			w.cfg.Logger.Warn("dead-letter sweep: list archived", "queue", q, "error", err)
			continue
		}
		for _, t := range ts {
			if !strings.Contains(t.LastErr, leaseExpired) {
				continue
			}
			if n, err := w.rc.Exists(ctx, doneKey(t.ID)).Result(); err == nil && n > 0 {
				// It finished; only its outcome was lost in a Redis outage
				// (done.go). Not a dead letter: drop asynq's archive entry.
				if err := insp.DeleteTask(q, t.ID); err == nil {
					w.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "job archived by asynq after it had finished (outcome lost in a Redis outage); removed from the archive",
						slog.String("task_type", t.Type), slog.String("task_id", t.ID), slog.String("queue", t.Queue))
				}
				continue
			}
			member := t.ID + "@" + strconv.FormatInt(t.LastFailedAt.Unix(), 10)
			added, err := w.rc.SAdd(ctx, sweptKey, member).Result()
			if err != nil || added == 0 {
				continue
			}
			e := deadletter.Entry{
				ID: t.ID, Type: t.Type, Queue: t.Queue, Payload: maskedPayload(t.Payload),
				LastError: payloads.MaskEmailsString(t.LastErr), Attempts: t.Retried + 1, ArchivedAt: t.LastFailedAt.UTC(),
			}
			if err := w.cfg.DeadLetters.Record(ctx, e); err != nil {
				_ = w.rc.SRem(ctx, sweptKey, member).Err() // let the next sweep try again
				w.cfg.Logger.Error("dead-letter sweep: write failed", "task_id", t.ID, "error", err)
				continue
			}
			w.cfg.Logger.LogAttrs(ctx, slog.LevelError, "job archived after its worker died",
				slog.String("task_type", t.Type), slog.String("task_id", t.ID), slog.String("queue", t.Queue), slog.Int("attempt", t.Retried+1))
			if w.cfg.Archived != nil {
				w.cfg.Archived(ctx, t.ID, t.Type, t.Payload, errors.New(t.LastErr))
			}
			n++
		}
	}
	return n
}

func (w *Worker) sweepLoop(ctx context.Context) {
	insp := asynq.NewInspectorFromRedisClient(w.rc)
	t := time.NewTicker(w.sweepEvery)
	defer t.Stop()
	for {
		w.sweep(ctx, insp)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
