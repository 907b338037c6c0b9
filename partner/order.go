package partner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/internal/eventorder"
)

// orderedKey is the set of the partners that are "ordered" in the
// registry in force (written with knownKey), for the monitor and jobctl.
const orderedKey = "escrowjobs:partners:ordered"

// wakeTries bounds the attempts to wake the next event of an escrow while
// it is still running: it returned its wait and asynq is about to put it
// in the retry set. wakePause is the pause between attempts.
const (
	wakeTries = 20
	wakePause = 10 * time.Millisecond
)

// recordOrdered records the ordered partners of the registry in force and
// returns the partners whose ordering was turned off since the last
// record.
func (s *State) recordOrdered(ctx context.Context, ids []string) ([]string, error) {
	prev, err := s.rc.SMembers(ctx, orderedKey).Result()
	if err != nil {
		return nil, err
	}
	pipe := s.rc.TxPipeline()
	pipe.Del(ctx, orderedKey)
	if len(ids) > 0 {
		pipe.SAdd(ctx, orderedKey, toAny(ids)...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var off []string
	for _, p := range prev {
		if !slices.Contains(ids, p) {
			off = append(off, p)
		}
	}
	return off, nil
}

// wakeBehind wakes every delivery of partner that waits behind an earlier
// event (its ordering was turned off: they are simply sent).
func (s *State) wakeBehind(ctx context.Context, partner string) int {
	ids, err := s.rc.ZRange(ctx, behindKey(partner), 0, -1).Result()
	if err != nil {
		return 0
	}
	n := 0
	for _, id := range ids {
		if s.wakeJob(ctx, id, partner, false) {
			n++
		}
	}
	return n
}

// wakeJob moves job id from asynq's retry set to pending and announces
// it. With retry, a job still running (it is returning its wait) is tried
// again for a moment. A job that is archived (it waited on its last
// attempt, ErrWaitsInOrder) is scheduled for redelivery now.
func (s *State) wakeJob(ctx context.Context, id, partner string, retry bool) bool {
	q := queueOf(id)
	for i := 0; ; i++ {
		n, err := eventorder.Wake(ctx, s.rc, q, id)
		switch {
		case err != nil:
			return false
		case n == 1:
			s.announce(ctx, q)
			return true
		case n == -1:
			if st, _ := s.rc.HGet(ctx, asynqkey.Task(q, id), "state").Result(); st == "archived" {
				m, _ := json.Marshal(dueEntry{ID: id, Partner: partner, Reason: "the earlier event of its escrow was released"})
				_ = s.rc.ZAdd(ctx, dueKey, redis.Z{Score: float64(time.Now().UnixMilli()), Member: string(m)}).Err()
			}
			return false
		case n == 2 && retry && i < wakeTries:
			time.Sleep(wakePause)
		default:
			return false
		}
	}
}

// released marks event jobID of escrow tx to partner done (delivered,
// discarded, or a final dead letter) and wakes the next event of the
// escrow if it waits for it.
func (s *State) released(ctx context.Context, tx, partner, jobID string, log *slog.Logger) {
	if tx == "" {
		return
	}
	next, _, err := eventorder.Release(ctx, s.rc, tx, partner, jobID)
	if err != nil {
		log.WarnContext(ctx, "webhook: cannot release the event in its escrow's order; the next event looks again after its recheck", "partner", partner, "task_id", jobID, "error", err)
		return
	}
	if next != "" {
		s.wakeJob(ctx, next, partner, true)
	}
}

// orderGate says whether delivery jobID of escrow tx to partner may go
// now, or returns the *WaitError of a delivery that waits for an earlier
// event. An event ahead of it that no job will ever run (an orphan:
// completed, or without a job, dead letter or redelivery for longer than
// OrphanGrace) is dropped from the order.
func (s *State) orderGate(ctx context.Context, tx, partner, jobID string, log *slog.Logger) (*WaitError, error) {
	for range 4 {
		v, err := eventorder.Check(ctx, s.rc, tx, partner, jobID)
		if err != nil {
			return nil, fmt.Errorf("partner %s: order of %s: %w", partner, tx, err)
		}
		if v.Go {
			return nil, nil
		}
		until := time.Now().Add(s.cfg.OrderRecheck)
		hq := queueOf(v.Head)
		pipe := s.rc.Pipeline()
		state := pipe.HGet(ctx, asynqkey.Task(hq, v.Head), "state")
		step := pipe.Exists(ctx, stepKey(partner, v.Head))
		parked := pipe.SIsMember(ctx, parkedKey(partner), v.Head)
		// Counted as waiting behind an earlier event (Status) until the
		// end of its wait plus a grace; trimmed and bounded like the
		// partner's waiting set.
		bk := behindKey(partner)
		now := time.Now().UnixMilli()
		pipe.ZRemRangeByScore(ctx, bk, "-inf", strconv.FormatInt(now, 10))
		pipe.ZAdd(ctx, bk, redis.Z{Score: float64(until.Add(waitingGrace).UnixMilli()), Member: jobID})
		pipe.ZRemRangeByRank(ctx, bk, 0, int64(-s.cfg.MaxWaiting-1))
		pipe.PExpire(ctx, bk, s.cfg.OrderRecheck+2*waitingGrace)
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("partner %s: order of %s: %w", partner, tx, err)
		}
		orphan := false
		switch st := state.Val(); {
		case st == "completed":
			orphan = true // delivered, its release lost
		case st == "" && step.Val() == 0 && !parked.Val():
			since, err := eventorder.Suspect(ctx, s.rc, tx, partner, v.Head)
			if err != nil {
				return nil, fmt.Errorf("partner %s: order of %s: %w", partner, tx, err)
			}
			if since >= s.cfg.OrphanGrace {
				orphan = true
			} else if left := time.Now().Add(s.cfg.OrphanGrace - since); left.Before(until) {
				until = left
			}
		}
		if !orphan {
			return &WaitError{Partner: partner, Reason: WaitInOrder, Until: until, Head: v.Head, Ahead: v.Ahead}, nil
		}
		if _, dropped, err := eventorder.DropHead(ctx, s.rc, tx, partner, v.Head); err != nil {
			return nil, fmt.Errorf("partner %s: order of %s: %w", partner, tx, err)
		} else if dropped {
			log.WarnContext(ctx, "webhook: dropped an event from its escrow's order: no job will deliver it", "partner", partner, "task_id", jobID, "orphan", v.Head, "state", state.Val())
		}
	}
	return &WaitError{Partner: partner, Reason: WaitInOrder, Until: time.Now().Add(s.cfg.OrderRecheck)}, nil
}

// WaitingBehind counts the events that wait behind dead letter jobID of
// taskType with payload: the later open events of its escrow, when its
// partner is ordered; 0 for any other job.
func (s *State) WaitingBehind(ctx context.Context, jobID, taskType string, payload []byte) (int, error) {
	if taskType != webhookType {
		return 0, nil
	}
	var p struct {
		TransactionID string `json:"transactionId"`
		PartnerID     string `json:"partnerId"`
	}
	if json.Unmarshal(payload, &p) != nil || p.TransactionID == "" || p.PartnerID == "" {
		return 0, nil
	}
	ordered, err := s.rc.SIsMember(ctx, orderedKey, p.PartnerID).Result()
	if err != nil || !ordered {
		return 0, err
	}
	return eventorder.Behind(ctx, s.rc, p.TransactionID, p.PartnerID, jobID)
}
