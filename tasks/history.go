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
// <enqueued-at unix nanos>", one field per job. Enqueue writes a field
// only when the job has none (HSETNX), and sets the expiry only then: a
// refused duplicate, however often it is retried, leaves the hash and its
// expiry as they were.
func historyKey(transactionID string) string { return "escrowjobs:index:" + transactionID }

// linesHistoryKey is the string of lines "<enqueued-at unix nanos>
// <queue> <job ID>\n" that Enqueue appended before (one per enqueue,
// duplicates too); History still reads it until the last of them expires
// (HistoryTTL).
func linesHistoryKey(transactionID string) string { return "escrowjobs:jobs:" + transactionID }

// legacyHistoryKey is the hash of job ID → "<queue> <enqueued-at unix
// nanos>" that Enqueue wrote before the lines; History still reads it.
func legacyHistoryKey(transactionID string) string { return "escrowjobs:history:" + transactionID }

// transactionOf is p's transactionId ("" for a payload without one).
func transactionOf(p Payload) string {
	if e, ok := p.(payloads.Escrowed); ok {
		return e.EscrowID()
	}
	return ""
}

// indexScript writes one job's field of an escrow's index. KEYS: the
// index. ARGV: job ID, "<queue> <nanos>", expiry ms, mode: "nx" writes
// only a field that is not there yet, "set" overwrites it. The expiry is
// set (never shortened) only when the field was written, so a duplicate
// changes nothing. Returns 1 when it wrote the field.
var indexScript = redis.NewScript(`
if ARGV[4] == 'set' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
elseif redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
local ttl = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`)

// unindexScript takes a job's field out of an escrow's index if it still
// holds the value this enqueue wrote. KEYS: the index. ARGV: job ID, value.
var unindexScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
`)

// indexEntry is the history field of one enqueue. Enqueue hands it to the
// wake publisher (wake.go), which sends it in the pipeline that carries
// asynq's enqueue script, ahead of the script: no extra round trip, and
// on one Redis the field lands before the job. (On a Cluster the escrow's
// key is in another slot than the queue's: its script goes to its own
// node in the same round trip, never inside asynq's script.) A job whose
// enqueue then fails stays in the index and shows as StateExpired:
// taking it out could drop a job that did land.
type indexEntry struct {
	txID, key, id, value string
	ttl                  time.Duration
	sent                 *redis.Cmd // nil until sent
}

type indexEntryKey struct{}

// indexEntry is t's history field, or nil for a job of no escrow.
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
	return &indexEntry{txID: txID, key: historyKey(txID), id: t.ID, ttl: HistoryTTL + delay,
		value: t.Queue + " " + strconv.FormatInt(now.UnixNano(), 10)}
}

// args are indexScript's arguments for mode.
func (ix *indexEntry) args(mode string) []any {
	return []any{ix.id, ix.value, ix.ttl.Milliseconds(), mode}
}

// add queues the entry's write (EVALSHA of indexScript) on pipe.
func (ix *indexEntry) add(ctx context.Context, pipe redis.Pipeliner) {
	ix.sent = pipe.EvalSha(ctx, indexScript.Hash(), []string{ix.key}, ix.args("nx")...)
}

// write settles the entry once the enqueue has answered: stored says
// whether it stored the job (false: refused as a duplicate). The common
// cases cost nothing more: a new job whose field the pipeline wrote, a
// duplicate whose field was there. Otherwise it writes the field on its
// own when the pipeline did not carry it (a script the wake publisher
// does not recognise, or Redis had not loaded indexScript) or failed to
// write it, so no job of an escrow that Enqueue reports stored is missing
// from the index; it overwrites the field of a job stored again under an
// ID the index still held (asynq had dropped the earlier job); and it
// takes back the field a refused duplicate wrote for a job of another
// escrow (a dedupe key reused across escrows). in reads that job; nil
// skips the check.
func (ix *indexEntry) write(ctx context.Context, rc redis.UniversalClient, in *asynq.Inspector, queue string, stored bool) error {
	var wrote int64
	err := errors.New("not sent")
	if ix.sent != nil {
		wrote, err = ix.sent.Int64()
	}
	if err != nil {
		if wrote, err = indexScript.Run(ctx, rc, []string{ix.key}, ix.args("nx")...).Int64(); err != nil {
			return fmt.Errorf("history index of %s: %w", ix.txID, err)
		}
	}
	switch {
	case stored && wrote == 0:
		if err := indexScript.Run(ctx, rc, []string{ix.key}, ix.args("set")...).Err(); err != nil {
			return fmt.Errorf("history index of %s: %w", ix.txID, err)
		}
	case !stored && wrote == 1 && in != nil:
		// A duplicate whose job this escrow's index did not name: this
		// escrow's own job whose field was lost (kept), or another's.
		info, err := in.GetTaskInfo(queue, ix.id)
		if err == nil && storedTransactionID(info.Payload) != ix.txID {
			_ = unindexScript.Run(ctx, rc, []string{ix.key}, ix.id, ix.value).Err()
		}
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
	// Headers are the job's headers while asynq holds it (a flow step's
	// name its flow and step; package flows reads them). Not in the JSON.
	Headers map[string]string `json:"-"`
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
	// Flow and Step are the flow and step the record names
	// (deadletter.Entry), for a job asynq no longer holds. Not in the JSON.
	Flow string `json:"-"`
	Step string `json:"-"`
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
		if info != nil && storedTransactionID(info.Payload) != transactionID {
			// A job of another escrow under an ID this escrow's index
			// names (a dedupe key used by both): not this escrow's.
			if r.field != "" {
				_ = unindexScript.Run(ctx, in.rc, []string{historyKey(transactionID)}, id, r.field).Err()
			}
			info = nil
			if _, isDead := dead[id]; !isDead {
				continue
			}
		}
		h := HistoryJob{}
		if !r.enqueued.IsZero() {
			h.EnqueuedAt = &r.enqueued
		}
		e, isDead := dead[id]
		if isDead {
			h.DeadLetter = &DeadLetterRecord{FailedAt: e.FailedAt.UTC(), Attempts: e.Attempts, Why: e.Why, State: e.State, LastError: payloads.MaskEmailsString(e.Error),
				Flow: e.Flow, Step: e.Step}
		}
		switch {
		case info != nil:
			h.Job = jobFrom(info)
			h.Headers = info.Headers
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
	field    string // its field's value in historyKey ("": from the formats before it)
}

// indexed reads an escrow's index, and the lines and the hash it used to
// be, in one round trip: job ID → its latest entry.
func (in *Inspector) indexed(ctx context.Context, transactionID string) (map[string]indexRef, error) {
	pipe := in.rc.Pipeline()
	index := pipe.HGetAll(ctx, historyKey(transactionID))
	lines := pipe.Get(ctx, linesHistoryKey(transactionID))
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
	for id, v := range index.Val() {
		q, ns, _ := strings.Cut(v, " ")
		refs[id] = indexRef{queue: q, enqueued: unixNanos(ns), field: v}
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
