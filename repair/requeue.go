package repair

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of asynq's TaskMessage (internal/proto/asynq.proto, v0.26).
const (
	fieldRetried      = 6
	fieldErrorMsg     = 7
	fieldDeadline     = 9
	fieldLastFailedAt = 11
	fieldHeaders      = 15
)

// requeuedTTL keeps the marker of a requeue (see putBack) and the
// tombstone of a discard (takeOut) as long as the default retention keeps
// a resolved dead letter.
const requeuedTTL = 90 * 24 * time.Hour

// putBack makes in's asynq hold the dead letter e to run again, with its full
// retry budget, under run header run, in one Redis transaction (WATCH on
// the task, then MULTI/EXEC) that also writes a marker of this requeue:
//
//   - archived: the task hash is rewritten (retried count, last error and
//     failure time cleared, the run header set), removed from the archive
//     and pushed onto the pending list. This is asynq's RunTask plus the
//     budget reset, which RunTask lacks.
//   - absent (asynq trimmed it): the task is rebuilt from e's exact
//     payload, the type's timeout and the job's retention, and pushed onto
//     the pending list.
//   - the marker exists, or asynq holds the job in another state: an
//     earlier requeue put it back (and its ledger write failed); nothing to
//     do.
//   - the tombstone of a discard of e exists (takeOut): the error wraps
//     ErrConflict and nothing is changed.
//
// The marker and the tombstone are keyed by the failure (failureKey), so
// a later dead letter of the same job ID is requeued afresh.
//
// Either the whole transaction lands or nothing does: at no moment is the
// job in neither place, and a retry after any failure never runs it twice.
// It returns the run header of the run and what it did.
func putBack(ctx context.Context, in *tasks.Inspector, e deadletter.Entry, run string) (string, string, error) {
	rc := in.Redis()
	q := e.Queue
	taskKey := asynqkey.Task(q, e.ID)
	// The marker and the tombstone name this failure (failureKey): a later
	// dead letter of the same job ID is never taken for this one.
	marker, tomb := failureKey("requeued", e), failureKey("discarded", e)
	// asynq's list of queues is outside the queue's hash slot (Cluster);
	// adding to it first is harmless.
	if err := rc.SAdd(ctx, asynqkey.AllQueues, q).Err(); err != nil {
		return "", "", fmt.Errorf("requeue %s: %w (the job is where it was)", e.ID, err)
	}
	var got, where string
	for range 5 {
		err := rc.Watch(ctx, func(tx *redis.Tx) error {
			vals, err := tx.HMGet(ctx, taskKey, "state", "msg").Result()
			if err != nil {
				return err
			}
			state, _ := vals[0].(string)
			msg, _ := vals[1].(string)
			prev, err := tx.Get(ctx, marker).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			if n, err := tx.Exists(ctx, tomb).Result(); err != nil {
				return err
			} else if n > 0 {
				return fmt.Errorf("a discard of this dead letter took it out of Redis; it does not run (discard it again if its record is still open): %w", ErrConflict)
			}
			if prev != "" && state != "archived" {
				got, where = prev, "already requeued"
				return nil
			}
			var fresh []byte
			switch state {
			case "archived":
				if fresh, err = resetMessage([]byte(msg), run, time.Now()); err != nil {
					return fmt.Errorf("decode asynq's task: %w", err)
				}
				where = "moved from asynq's archive"
			case "":
				if e.PayloadInexact {
					return fmt.Errorf("asynq no longer holds it and its record (written before the ledger kept exact payloads) has only a masked payload: %w", ErrCannotRebuild)
				}
				fresh = buildMessage(e, run)
				where = "rebuilt from the ledger"
			case "active":
				// Recorded by the error handler of its last attempt, which
				// asynq runs before it archives the job: not archived yet.
				return ErrStillActive
			default:
				t, err := in.Asynq().GetTaskInfo(q, e.ID)
				if err == nil {
					got = t.Headers[deadletter.RunHeader]
				}
				where = "already " + state
				return nil
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, taskKey, "msg", fresh, "state", "pending", "pending_since", strconv.FormatInt(time.Now().UnixNano(), 10))
				if state == "archived" {
					p.ZRem(ctx, asynqkey.Archived(q), e.ID)
				}
				p.LPush(ctx, asynqkey.Pending(q), e.ID)
				p.Set(ctx, marker, run, requeuedTTL)
				return nil
			})
			got = run
			return err
		}, taskKey, marker, tomb)
		if errors.Is(err, redis.TxFailedErr) {
			continue // the task changed meanwhile: look again
		}
		if err != nil {
			return "", "", fmt.Errorf("requeue %s: %w (the job is where it was)", e.ID, err)
		}
		if where == "moved from asynq's archive" || where == "rebuilt from the ledger" {
			wake(ctx, rc, q)
		}
		return got, where, nil
	}
	return "", "", fmt.Errorf("requeue %s: the task kept changing under the requeue; try again", e.ID)
}

// buildMessage encodes a fresh asynq TaskMessage for e, as asynq's client
// would for tasks.New's options: same ID, queue, payload; retry.Max
// retries; the type's timeout; Retention; the run header, and the flow
// and step headers of a job of a flow.
func buildMessage(e deadletter.Entry, run string) []byte {
	timeout := 30 * time.Minute // asynq's default
	if k, err := tasks.Lookup(e.Type); err == nil && k.Timeout > 0 {
		timeout = k.Timeout
	}
	var b []byte
	str := func(num protowire.Number, s string) {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	varint := func(num protowire.Number, v uint64) {
		b = protowire.AppendTag(b, num, protowire.VarintType)
		b = protowire.AppendVarint(b, v)
	}
	str(1, e.Type)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, e.Payload)
	str(3, e.ID)
	str(4, e.Queue)
	varint(5, uint64(retry.Max))
	varint(8, uint64(timeout/time.Second))
	varint(12, uint64(tasks.Retention/time.Second))
	header := func(k, v string) {
		entry := protowire.AppendTag(nil, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, k)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendString(entry, v)
		b = protowire.AppendTag(b, fieldHeaders, protowire.BytesType)
		b = protowire.AppendBytes(b, entry)
	}
	header(deadletter.RunHeader, run)
	if e.Flow != "" && e.Step != "" {
		// A step of a flow: its success advances the flow (flows.Of).
		header(flows.HeaderFlow, e.Flow)
		header(flows.HeaderStep, e.Step)
	}
	return b
}

// resetMessage rewrites an encoded TaskMessage for a fresh run: no retries
// spent, no last error or failure time, no deadline already past, and the
// run header set.
func resetMessage(msg []byte, run string, now time.Time) ([]byte, error) {
	var out []byte
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		field := b[:n+m]
		b = b[n+m:]
		switch num {
		case fieldRetried, fieldErrorMsg, fieldLastFailedAt:
			continue
		case fieldDeadline:
			if v, k := protowire.ConsumeVarint(field[n:]); k > 0 && int64(v) > 0 && int64(v) <= now.Unix() {
				continue
			}
		case fieldHeaders:
			if key, _ := headerEntry(field[n:]); key == deadletter.RunHeader {
				continue
			}
		}
		out = append(out, field...)
	}
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, deadletter.RunHeader)
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendString(entry, run)
	out = protowire.AppendTag(out, fieldHeaders, protowire.BytesType)
	out = protowire.AppendBytes(out, entry)
	return out, nil
}

// headerEntry reads the key and value of one map<string,string> entry.
func headerEntry(b []byte) (key, value string) {
	entry, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return "", ""
	}
	for len(entry) > 0 {
		num, typ, k := protowire.ConsumeTag(entry)
		if k < 0 {
			return key, value
		}
		entry = entry[k:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, entry)
			if m < 0 {
				return key, value
			}
			entry = entry[m:]
			continue
		}
		s, m := protowire.ConsumeString(entry)
		if m < 0 {
			return key, value
		}
		entry = entry[m:]
		switch num {
		case 1:
			key = s
		case 2:
			value = s
		}
	}
	return key, value
}

// wake tells idle workers that queue has a pending job
// (tasks.WakeChannel), as tasks.Client does after an enqueue. A lost
// wake-up costs one poll interval.
func wake(ctx context.Context, rc redis.UniversalClient, queue string) {
	if _, cluster := rc.(*redis.ClusterClient); cluster {
		_ = rc.SPublish(ctx, tasks.WakeChannel(queue), "p").Err()
		return
	}
	_ = rc.Publish(ctx, tasks.WakeChannel(queue), "p").Err()
}
