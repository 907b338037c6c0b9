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

// historyKey is the Redis string of one escrow's jobs: one line per
// enqueue, "<enqueued-at unix nanos> <queue> <job ID>\n", appended. A job
// enqueued again (a duplicate) adds a line; History keeps its latest. A
// string of lines costs Redis less than a hash, which job IDs over 64
// bytes turn from a compact listpack into a hashtable.
func historyKey(transactionID string) string { return "escrowjobs:jobs:" + transactionID }

// legacyHistoryKey is the hash of job ID → "<queue> <enqueued-at unix
// nanos>" that Enqueue wrote before; History still reads it, until the
// last of them expires (HistoryTTL).
func legacyHistoryKey(transactionID string) string { return "escrowjobs:history:" + transactionID }

// transactionOf is p's transactionId ("" for a payload without one).
func transactionOf(p Payload) string {
	if e, ok := p.(payloads.Escrowed); ok {
		return e.EscrowID()
	}
	return ""
}

// indexEntry is the history line of one enqueue. Enqueue hands it to the
// wake publisher (wake.go), which sends it in the pipeline that carries
// asynq's enqueue script, ahead of the script: no extra round trip, and
// on one Redis the line lands before the job. (On a Cluster the escrow's
// key is in another slot than the queue's: its two commands go to their
// own node in the same round trip, never inside asynq's script.) A job
// whose enqueue then fails stays in the index and shows as StateExpired:
// taking it out could drop a job that did land.
type indexEntry struct {
	txID, key, line string
	ttl             time.Duration
	appended        *redis.IntCmd  // nil until sent
	expire          *redis.BoolCmd // nil until sent
}

type indexEntryKey struct{}

// indexEntry is t's history line, or nil for a job of no escrow.
func (c *Client) indexEntry(t *Task, now time.Time) *indexEntry {
	txID := t.transactionID
	if txID == "" && t.opts == nil && t.Task != nil {
		txID = storedTransactionID(t.Payload()) // a task rebuilt from storage (the outbox relay)
	}
	if txID == "" {
		return nil
	}
	delay := t.delay
	if !t.readyAt.IsZero() {
		delay = max(delay, t.readyAt.Sub(now))
	}
	return &indexEntry{txID: txID, key: historyKey(txID), ttl: HistoryTTL + delay,
		line: strconv.FormatInt(now.UnixNano(), 10) + " " + t.Queue + " " + t.ID + "\n"}
}

// add queues the entry's APPEND and PEXPIRE on pipe.
func (ix *indexEntry) add(ctx context.Context, pipe redis.Pipeliner) {
	ix.appended = pipe.Append(ctx, ix.key, ix.line)
	ix.expire = pipe.PExpire(ctx, ix.key, ix.ttl)
}

// write makes sure the entry is in Redis after the enqueue: written on its
// own when the enqueue's pipeline did not carry it (a script the wake
// publisher does not recognise) or failed to write it, so no job of an
// escrow that Enqueue reports stored is missing from the index.
func (ix *indexEntry) write(ctx context.Context, rc redis.UniversalClient) error {
	if ix.appended != nil && ix.appended.Err() == nil && ix.expire.Err() == nil {
		return nil
	}
	pipe := rc.Pipeline()
	ix.add(ctx, pipe)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("history index of %s: %w", ix.txID, err)
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
	refs, err := in.indexed(ctx, transactionID)
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
	for id, e := range dead {
		if _, ok := refs[id]; !ok {
			refs[id] = indexRef{queue: e.Queue}
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

// indexRef is what the index holds of one job.
type indexRef struct {
	queue    string
	enqueued time.Time
}

// indexed reads an escrow's index (and the legacy hash, in the same round
// trip): job ID → its latest line.
func (in *Inspector) indexed(ctx context.Context, transactionID string) (map[string]indexRef, error) {
	pipe := in.rc.Pipeline()
	lines := pipe.Get(ctx, historyKey(transactionID))
	legacy := pipe.HGetAll(ctx, legacyHistoryKey(transactionID))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	refs := map[string]indexRef{}
	for id, v := range legacy.Val() {
		q, ns, _ := strings.Cut(v, " ")
		refs[id] = indexRef{queue: q, enqueued: unixNanos(ns)}
	}
	for line := range strings.Lines(lines.Val()) {
		ns, rest, ok1 := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		q, id, ok2 := strings.Cut(rest, " ")
		if ok1 && ok2 && id != "" {
			refs[id] = indexRef{queue: q, enqueued: unixNanos(ns)}
		}
	}
	return refs, nil
}

// unixNanos is the time of a decimal Unix nanosecond count (zero when it
// is not one).
func unixNanos(ns string) time.Time {
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
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
