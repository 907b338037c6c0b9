package tasks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// HistoryTTL is how long an escrow's history index outlives its latest
// enqueue (plus that job's delay): asynq keeps a completed job for
// Retention (1 h); a day leaves room for retries, long outages and a late
// look. Dead letters come from the durable dead-letter log, which keeps
// them for good, so they do not depend on the index.
const HistoryTTL = 24 * time.Hour

// historyKey is the Redis hash of one escrow's jobs: job ID → "<queue>
// <enqueued-at unix nanos>".
func historyKey(transactionID string) string { return "escrowjobs:history:" + transactionID }

// transactionOf is p's transactionId ("" for a payload without one).
func transactionOf(p Payload) string {
	if e, ok := p.(payloads.Escrowed); ok {
		return e.EscrowID()
	}
	return ""
}

// indexScript adds a job to an escrow's history hash and sets the hash's
// expiry: one command, one round trip.
var indexScript = redis.NewScript(`redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
redis.call("PEXPIRE", KEYS[1], ARGV[3])
return 1`)

// index adds t to its escrow's history before it is enqueued (one round
// trip: HSET and PEXPIRE in a script), so no job of an escrow is ever
// missing from the index. A job whose enqueue then fails stays in it and
// shows as StateExpired: taking it out could drop a job that did land.
func (c *Client) index(ctx context.Context, t *Task) error {
	txID := t.transactionID
	if txID == "" && t.opts == nil && t.Task != nil {
		txID = storedTransactionID(t.Payload()) // a task rebuilt from storage (the outbox relay)
	}
	if txID == "" {
		return nil
	}
	key := historyKey(txID)
	delay := t.delay
	if !t.readyAt.IsZero() {
		delay = max(delay, time.Until(t.readyAt))
	}
	err := indexScript.Run(ctx, c.rc, []string{key}, t.ID, t.Queue+" "+strconv.FormatInt(time.Now().UnixNano(), 10),
		(HistoryTTL + delay).Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("history index of %s: %w", txID, err)
	}
	return nil
}

// storedTransactionID reads the transactionId of a JSON payload ("" when
// it has none or is not JSON).
func storedTransactionID(payload []byte) string {
	var p struct {
		TransactionID string `json:"transactionId"`
	}
	if json.Unmarshal(payload, &p) != nil || payloads.ValidateEscrowID(p.TransactionID) != nil {
		return ""
	}
	return p.TransactionID
}

// DeadLetterFinder finds the durable dead letters of one escrow
// (deadletter.ForTransactionOf over the dead-letter ledger).
type DeadLetterFinder interface {
	ForTransaction(ctx context.Context, transactionID string) ([]deadletter.Entry, error)
}

// HistoryJob is one job of an escrow's history, in the JSON shape of
// GET /api/v1/transactions/{transactionId}/jobs.
type HistoryJob struct {
	Job
	// EnqueuedAt is when Enqueue indexed the job (nil for a dead letter
	// whose index entry has expired).
	EnqueuedAt *time.Time `json:"enqueuedAt,omitempty"`
	// DeadLetter is the durable dead-letter record, when there is one.
	DeadLetter *DeadLetterRecord `json:"deadLetter,omitempty"`
}

// DeadLetterRecord is what the dead-letter ledger holds of a job (its
// latest entry).
type DeadLetterRecord struct {
	FailedAt time.Time `json:"failedAt"`
	Attempts int       `json:"attempts"`
	// Why is permanent, exhausted or crashed; State is open, requeued or
	// discarded (deadletter.Entry).
	Why       string `json:"why"`
	State     string `json:"state"`
	LastError string `json:"lastError,omitempty"`
}

// StateExpired is the state of a job that is in the escrow's index but no
// longer in Redis: asynq dropped it after Retention (1 h) as completed (or
// its enqueue failed after it was indexed).
const StateExpired = "expired"

// History lists every job of one escrow, all types, oldest first: the jobs
// its history index names (pending, active, scheduled, retrying, archived,
// and completed ones within Retention) and the dead letters dl finds (nil:
// none), each with its current state in asynq. A job that left Redis is
// listed from its dead letter (state archived), or as StateExpired.
func (in *Inspector) History(ctx context.Context, transactionID string, dl DeadLetterFinder) ([]HistoryJob, error) {
	if err := payloads.ValidateEscrowID(transactionID); err != nil {
		return nil, err
	}
	indexed, err := in.rc.HGetAll(ctx, historyKey(transactionID)).Result()
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", transactionID, err)
	}
	dead := map[string]deadletter.Entry{}
	if dl != nil {
		entries, err := dl.ForTransaction(ctx, transactionID)
		if err != nil {
			return nil, fmt.Errorf("history of %s: dead letters: %w", transactionID, err)
		}
		for _, e := range entries {
			if old, ok := dead[e.ID]; !ok || e.FailedAt.After(old.FailedAt) {
				dead[e.ID] = e // a job requeued and archived again: its latest record
			}
		}
	}
	type ref struct {
		queue    string
		enqueued time.Time
	}
	refs := map[string]ref{}
	for id, v := range indexed {
		q, ns, _ := strings.Cut(v, " ")
		r := ref{queue: q}
		if n, err := strconv.ParseInt(ns, 10, 64); err == nil {
			r.enqueued = time.Unix(0, n).UTC()
		}
		refs[id] = r
	}
	for id, e := range dead {
		if _, ok := refs[id]; !ok {
			refs[id] = ref{queue: e.Queue}
		}
	}
	out := make([]HistoryJob, 0, len(refs))
	for id, r := range refs {
		info, err := within(ctx, "history "+id, func() (*asynq.TaskInfo, error) {
			t, err := in.i.GetTaskInfo(r.queue, id)
			if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
				return nil, nil
			}
			return t, err
		})
		if err != nil {
			return nil, fmt.Errorf("history of %s: job %s: %w", transactionID, id, err)
		}
		h := HistoryJob{}
		if !r.enqueued.IsZero() {
			h.EnqueuedAt = &r.enqueued
		}
		e, isDead := dead[id]
		if isDead {
			h.DeadLetter = &DeadLetterRecord{FailedAt: e.FailedAt.UTC(), Attempts: e.Attempts, Why: e.Why, State: e.State, LastError: payloads.MaskEmailsString(e.Error)}
		}
		switch {
		case info != nil:
			h.Job = jobFrom(info)
		case isDead:
			h.Job = Job{ID: id, Type: e.Type, Queue: e.Queue, State: asynq.TaskStateArchived.String(),
				Attempts: e.Attempts, MaxRetry: -1, LastError: payloads.MaskEmailsString(e.Error), Payload: payloads.MaskedJSON(e.Payload)}
		default:
			typ, _, _ := strings.Cut(id, ":")
			h.Job = Job{ID: id, Type: typ, Queue: r.queue, State: StateExpired, MaxRetry: -1}
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b HistoryJob) int {
		return cmp.Or(a.sortTime().Compare(b.sortTime()), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// sortTime orders a history: the enqueue time, else the archive time.
func (h HistoryJob) sortTime() time.Time {
	switch {
	case h.EnqueuedAt != nil:
		return *h.EnqueuedAt
	case h.DeadLetter != nil:
		return h.DeadLetter.FailedAt
	}
	return time.Time{}
}

// EscrowHistory is the JSON answer of GET
// /api/v1/transactions/{transactionId}/jobs and of jobctl history --json.
type EscrowHistory struct {
	TransactionID string       `json:"transactionId"`
	Jobs          []HistoryJob `json:"jobs"`
}
