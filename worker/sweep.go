package worker

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// SweepInterval is how often a worker pages through asynq's archive for
// jobs the ledger lacks.
const SweepInterval = 30 * time.Second

// sweepMarkKey + queue holds the archive time (asynq's score, Unix seconds)
// up to which the sweep has recorded every archived job, for every worker
// process.
const sweepMarkKey = "escrowjobs:deadletter:sweep-mark:"

// sweepOverlap is re-read below the mark each sweep: workers' clocks
// differ, and a worker behind archives with an older score.
const sweepOverlap = 2 * time.Minute

// leaseExpired is asynq's error for a job whose worker died; when that was
// the job's last attempt, asynq's recoverer archives it directly and no
// error handler runs.
var leaseExpired = asynq.ErrLeaseExpired.Error()

// sweepPage is how many archived jobs one Redis round trip reads; the
// sweep holds no more than one page in memory.
const sweepPage = 200

// sweep records in the ledger every archived job it does not hold yet,
// reading each queue's archive from its persisted mark in pages ordered by
// archive time, however many there are. The ledger's Record is idempotent,
// so what the error handler (or another worker's sweep) recorded already
// is a no-op. Most archived jobs were recorded by handleError when they
// failed; the sweep finds those asynq's recoverer archived itself (their
// worker died during the last attempt). It returns how many it recorded.
func (w *Worker) sweep(ctx context.Context, insp *asynq.Inspector) int {
	queues, err := insp.Queues()
	if err != nil {
		w.cfg.Logger.Warn("dead-letter sweep: list queues", "error", err)
		return 0
	}
	n := 0
	for _, q := range queues {
		n += w.sweepQueue(ctx, insp, q)
	}
	return n
}

func (w *Worker) sweepQueue(ctx context.Context, insp *asynq.Inspector, q string) int {
	mark, err := w.rc.Get(ctx, sweepMarkKey+q).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		w.cfg.Logger.Warn("dead-letter sweep: read mark", "queue", q, "error", err)
		return 0
	}
	from := max(0, mark-int64(sweepOverlap/time.Second))
	high, atHigh := from, int64(0) // score reached, members done at that score
	recorded, failed := 0, false
	for {
		zs, err := w.rc.ZRangeByScoreWithScores(ctx, asynqkey.Archived(q), &redis.ZRangeBy{
			Min: strconv.FormatInt(high, 10), Max: "+inf", Offset: atHigh, Count: sweepPage,
		}).Result()
		if err != nil {
			w.cfg.Logger.Warn("dead-letter sweep: read archive", "queue", q, "error", err)
			return recorded
		}
		for _, z := range zs {
			id, _ := z.Member.(string)
			if score := int64(z.Score); score > high {
				high, atHigh = score, 0
			}
			atHigh++
			t, err := insp.GetTaskInfo(q, id)
			if err != nil { // requeued or trimmed meanwhile
				continue
			}
			if t.State != asynq.TaskStateArchived {
				continue
			}
			if strings.Contains(t.LastErr, leaseExpired) {
				if n, err := w.rc.Exists(ctx, doneKey(t.ID)).Result(); err == nil && n > 0 {
					// It finished; only its outcome was lost in a Redis
					// outage (done.go). Not a dead letter: drop asynq's
					// archive entry.
					if err := insp.DeleteTask(q, t.ID); err == nil {
						w.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "job archived by asynq after it had finished (outcome lost in a Redis outage); removed from the archive",
							slog.String("task_type", t.Type), slog.String("task_id", t.ID), slog.String("queue", t.Queue))
					}
					continue
				}
			}
			e := repair.EntryFromTask(t)
			e.Error = payloads.MaskEmailsString(e.Error)
			ok, err := w.cfg.DeadLetters.Record(ctx, e)
			if err != nil {
				failed = true
				w.cfg.Logger.Error("dead-letter sweep: write failed; the next sweep tries again", "task_id", t.ID, "queue", q, "error", payloads.MaskEmailsString(err.Error()))
				continue
			}
			attrs := []slog.Attr{slog.String("task_type", t.Type), slog.String("task_id", t.ID), slog.String("queue", t.Queue), slog.Int("attempt", t.Retried+1)}
			if e.Flow != "" {
				attrs = append(attrs, slog.String("flow_id", e.Flow), slog.String("step", e.Step))
			}
			// Also when the ledger had it: the error handler that recorded
			// it may have died before telling the flow (Failed is
			// idempotent; the sweep sees a job for sweepOverlap at most).
			w.flowFailed(ctx, e, attrs)
			if !ok {
				continue
			}
			recorded++
			msg := "dead letter recorded by the sweep (its handler's record was missing)"
			if e.Why == deadletter.WhyCrashed {
				msg = "job archived after its worker died"
			}
			w.cfg.Logger.LogAttrs(ctx, slog.LevelError, msg, attrs...)
			if w.cfg.Archived != nil {
				w.cfg.Archived(ctx, t.ID, t.Type, t.Payload, errors.New(t.LastErr))
			}
		}
		if len(zs) < sweepPage {
			break
		}
	}
	if !failed && high > mark {
		if err := w.rc.Set(ctx, sweepMarkKey+q, high, 0).Err(); err != nil {
			w.cfg.Logger.Warn("dead-letter sweep: save mark", "queue", q, "error", err)
		}
	}
	return recorded
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
