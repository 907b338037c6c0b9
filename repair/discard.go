package repair

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/internal/eventorder"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
)

// ErrConflict is returned by Requeue and Discard when the other one got
// to the same dead letter first: a requeue finds it discarded (the job
// does not run), or a discard finds its job back in a queue, running or
// run again (it is not discarded). The error says which; the one that got
// there first stands. The API answers 409, jobctl exits non-zero.
var ErrConflict = errors.New("conflict with another repair of the same dead letter")

// failureKey names a key about one failure of a job: its ID, its run and
// when it failed, so a later failure of the same job ID (a new run, or
// the ID used again once asynq freed it) never shares it. kind is
// "requeued" (the marker of a requeue, putBack) or "discarded" (the
// tombstone of a discard, takeOut). The queue's hash tag keeps it in the
// slot of the job's asynq keys.
func failureKey(kind string, e deadletter.Entry) string {
	return "escrowjobs:{" + e.Queue + "}:" + kind + ":" + e.ID + ":" + e.Run + ":" + strconv.FormatInt(e.FailedAt.UnixMicro(), 10)
}

// takeOut makes sure the dead letter e can never run again, before a
// discard is recorded, in one Redis transaction (WATCH on the task, the
// requeue marker and the tombstone, then MULTI/EXEC) that also writes the
// tombstone of the discard, which a requeue of e then refuses (putBack):
//
//   - archived: removed from asynq's archive (the job ID is free again).
//   - absent (asynq trimmed it), or completed before any requeue of e (the
//     ID used again by another job): nothing to remove.
//   - a requeue of e put the job back (its marker exists) and it is
//     pending, scheduled, retrying, running or has run: its ledger write
//     failed or is still to come. Nothing is changed and the error wraps
//     ErrConflict: the job is not discarded, it runs.
//   - pending, scheduled, retry, active or aggregating without a requeue
//     of e: a job of that ID is in a queue, not put there by this dead
//     letter. Nothing is changed and the error wraps ErrConflict.
//
// Either the whole transaction lands or nothing does.
func takeOut(ctx context.Context, rc redis.UniversalClient, e deadletter.Entry) error {
	q := e.Queue
	taskKey := asynqkey.Task(q, e.ID)
	marker, tomb := failureKey("requeued", e), failureKey("discarded", e)
	for range 5 {
		err := rc.Watch(ctx, func(tx *redis.Tx) error {
			state, err := tx.HGet(ctx, taskKey, "state").Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			n, err := tx.Exists(ctx, marker).Result()
			if err != nil {
				return err
			}
			switch {
			case state == "archived", state == "":
			case n > 0:
				return fmt.Errorf("a requeue of this dead letter put the job back in queue %s (now %s) before its ledger record was written; it is not discarded (requeue it again to record the requeue): %w", q, state, ErrConflict)
			case state == "completed":
			default:
				return fmt.Errorf("a job %s is %s in queue %s, not put there by a requeue of this dead letter; nothing was changed: %w", e.ID, state, q, ErrConflict)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				if state == "archived" {
					p.ZRem(ctx, asynqkey.Archived(q), e.ID)
					p.Del(ctx, taskKey)
				}
				p.Set(ctx, tomb, "1", requeuedTTL)
				return nil
			})
			return err
		}, taskKey, marker, tomb)
		if errors.Is(err, redis.TxFailedErr) {
			continue // the task changed meanwhile: look again
		}
		if err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("%w (nothing was changed)", err)
		}
		return err
	}
	return errors.New("the task kept changing under the discard; try again")
}

// webhookType is the job type of partner events, which an "ordered"
// partner gets in sequence.
var webhookType = payloads.WebhookEscrowStatusChanged{}.TaskType()

// releaseInOrder releases the discarded partner event e from its
// escrow's order (package internal/eventorder): the later events of the
// escrow no longer wait for it, and the next one, if it waits, is moved
// from asynq's retry set to pending and announced. Any other job: nothing.
func releaseInOrder(ctx context.Context, rc redis.UniversalClient, e deadletter.Entry) error {
	if e.Type != webhookType {
		return nil
	}
	var p struct {
		TransactionID string `json:"transactionId"`
		PartnerID     string `json:"partnerId"`
	}
	if json.Unmarshal(e.Payload, &p) != nil || p.TransactionID == "" || p.PartnerID == "" {
		return nil
	}
	next, _, err := eventorder.Release(ctx, rc, p.TransactionID, p.PartnerID, e.ID)
	if err != nil || next == "" {
		return err
	}
	q := e.Queue
	if n, err := eventorder.Wake(ctx, rc, q, next); err == nil && n == 1 {
		ch := tasks.WakeChannel(q)
		if _, cluster := rc.(*redis.ClusterClient); cluster {
			_ = rc.SPublish(ctx, ch, "p").Err()
		} else {
			_ = rc.Publish(ctx, ch, "p").Err()
		}
	}
	return nil
}
