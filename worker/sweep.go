package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// sweptKey is the sorted set of the archived jobs of queue q the sweep has
// dealt with: member the job ID, score its archive score then. It shares
// the queue's hash tag with asynq's archive (one slot on a Cluster).
func sweptKey(q string) string { return "escrowjobs:{" + q + "}:swept" }

// sweptTTL is how long the swept set outlives the last sweep.
const sweptTTL = 7 * 24 * time.Hour

// leaseExpired is asynq's error for a job whose worker died; when that was
// the job's last attempt, asynq's recoverer archives it directly and no
// error handler runs.
var leaseExpired = asynq.ErrLeaseExpired.Error()

// sweepPage is how many archived jobs one Redis round trip reads; the
// sweep holds no more than one page in memory.
const sweepPage = 200

// sweep records in the ledger every archived job it does not hold yet,
// reading each queue's whole archive in pages, however many there are.
// What it has dealt with is kept by job ID and archive score (sweptKey),
// so a job is looked at once per archival, whatever its score: asynq
// scores an archived job by the clock of the process that archived it,
// and a recoverer whose clock is behind must not hide its archives. The
// ledger's Record is idempotent, so what the error handler (or another
// worker's sweep) recorded already is a no-op. Most archived jobs were
// recorded by handleError when they failed; the sweep finds those asynq's
// recoverer archived itself (their worker died during the last attempt).
// It returns how many it recorded.
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
	recorded := 0
	for start := int64(0); ; start += sweepPage {
		zs, err := w.rc.ZRangeWithScores(ctx, asynqkey.Archived(q), start, start+sweepPage-1).Result()
		if err != nil {
			w.cfg.Logger.Warn("dead-letter sweep: read archive", "queue", q, "error", err)
			return recorded
		}
		if len(zs) == 0 {
			break
		}
		ids := make([]string, len(zs))
		for i, z := range zs {
			ids[i], _ = z.Member.(string)
		}
		seen, err := w.rc.ZMScore(ctx, sweptKey(q), ids...).Result()
		if err != nil {
			w.cfg.Logger.Warn("dead-letter sweep: read what was swept", "queue", q, "error", err)
			return recorded
		}
		for i, z := range zs {
			id := ids[i]
			if i < len(seen) && seen[i] == z.Score {
				continue // dealt with at this archival
			}
			done := func() { _ = w.rc.ZAdd(ctx, sweptKey(q), redis.Z{Score: z.Score, Member: id}).Err() }
			t, err := insp.GetTaskInfo(q, id)
			if err != nil { // requeued or trimmed meanwhile
				continue
			}
			if t.State != asynq.TaskStateArchived {
				continue
			}
			// asynq's recoverer archived it: its worker died during the
			// last attempt.
			crashed := strings.Contains(t.LastErr, leaseExpired)
			if crashed {
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
				w.cfg.Logger.Error("dead-letter sweep: write failed; the next sweep tries again", "task_id", t.ID, "queue", q, "error", payloads.MaskEmailsString(err.Error()))
				continue
			}
			attrs := []slog.Attr{slog.String("task_type", t.Type), slog.String("task_id", t.ID), slog.String("queue", t.Queue), slog.Int("attempt", t.Retried+1)}
			if e.Flow != "" {
				attrs = append(attrs, slog.String("flow_id", e.Flow), slog.String("step", e.Step))
			}
			// Also when the ledger had it: the error handler that recorded
			// it may have died before telling the flow (Failed is
			// idempotent; the sweep deals with a job once per archival).
			w.flowFailed(ctx, e, attrs)
			lastErr := errors.New(t.LastErr)
			if !ok {
				// The ledger had it. When asynq's recoverer archived the job
				// (its lease expired), the worker that ran the last attempt
				// died after its error handler wrote the record, perhaps
				// before it told Archived (webhook redelivery): tell it now,
				// with the recorded error. Otherwise the handler's run went
				// through and told it.
				if !crashed {
					done()
					continue
				}
				open, recordedErr := w.recordedError(ctx, t)
				if !open {
					done()
					continue
				}
				lastErr = recordedErr
				w.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "job archived after its worker died past its dead-letter record; its archive hooks are told again", attrs...)
			} else {
				recorded++
				msg := "dead letter recorded by the sweep (its handler's record was missing)"
				if crashed {
					msg = "job archived after its worker died"
				}
				w.cfg.Logger.LogAttrs(ctx, slog.LevelError, msg, attrs...)
			}
			if w.cfg.Archived != nil {
				w.cfg.Archived(ctx, t.ID, t.Type, t.Payload, lastErr)
			}
			done()
		}
		if len(zs) < sweepPage {
			break
		}
	}
	// Forget the jobs no longer archived (requeued, discarded, trimmed):
	// keep only the members also in the archive, with their swept score.
	// The set also expires sweptTTL after the last sweep of any worker: a
	// fleet stopped that long re-checks the archive once (recording what
	// the ledger already holds is a no-op).
	pipe := w.rc.TxPipeline()
	pipe.ZInterStore(ctx, sweptKey(q), &redis.ZStore{Keys: []string{sweptKey(q), asynqkey.Archived(q)}, Weights: []float64{1, 0}})
	pipe.Expire(ctx, sweptKey(q), sweptTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		w.cfg.Logger.Warn("dead-letter sweep: prune what was swept", "queue", q, "error", err)
	}
	return recorded
}

// recordGetter is a Recorder that also reads a record back
// (deadletter.Ledger does): the sweep then tells the archive hooks the
// error the record holds. Without it they get asynq's lease error.
type recordGetter interface {
	Get(ctx context.Context, id string) (deadletter.Entry, error)
}

// recordedError returns the error the ledger's record of crashed job t holds
// (its worker died after its error handler wrote it): wrapping
// asynq.SkipRetry when the failure was permanent, as the handler's own
// error did. open is false when there is nothing to tell again: the
// record is no longer open (an operator or a redelivery dealt with it),
// or it is a sweep's own crash record (that sweep told the hooks).
func (w *Worker) recordedError(ctx context.Context, t *asynq.TaskInfo) (open bool, lastErr error) {
	g, ok := w.cfg.DeadLetters.(recordGetter)
	if !ok {
		return true, errors.New(t.LastErr)
	}
	e, gerr := g.Get(ctx, t.ID)
	if gerr != nil || e.State != deadletter.StateOpen || e.Why == deadletter.WhyCrashed {
		return false, nil
	}
	if e.Why == deadletter.WhyPermanent {
		return true, fmt.Errorf("%s: %w", e.Error, asynq.SkipRetry)
	}
	return true, errors.New(e.Error)
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
