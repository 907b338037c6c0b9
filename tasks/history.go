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
	"github.com/escrowjobs/escrowjobs/internal/historyindex"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// HistoryTTL is how long an escrow's history index outlives its latest
// new job (plus that job's delay): asynq keeps a completed job for
// Retention (1 h); a day leaves room for retries, long outages and a late
// look. Dead letters come from the durable dead-letter log, which keeps
// them for good, so they do not depend on the index.
const HistoryTTL = 24 * time.Hour

// historyKey is the Redis string of one escrow's jobs
// (historyindex.Key). Enqueue adds a line only for a job it stored and
// only when the job has none, and sets the expiry only then: a refused
// duplicate, however often it is retried, leaves the string and its
// expiry as they were. A string, not a hash: most job IDs are longer than
// a hash's compact encoding allows (hash-max-listpack-value, 64 bytes),
// and a hash of one such field costs Redis ~120 bytes more than the line.
func historyKey(transactionID string) string { return historyindex.Key(transactionID) }

// hashHistoryKey is the hash of job ID → "<queue> <enqueued-at unix
// nanos>" that Enqueue wrote before the lines of historyKey (and that the
// flows' inline enqueue script writes); History reads it too.
func hashHistoryKey(transactionID string) string { return "escrowjobs:index:" + transactionID }

// linesHistoryKey is the string of lines "<enqueued-at unix nanos>
// <queue> <job ID>\n" that Enqueue appended before the hash (one per
// enqueue, duplicates too); History still reads it until it expires.
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

// indexLua defines index(key, id, rest, ttl, mode) (historyindex.Lua),
// shared by indexScript, the enqueue script of wake.go and the flows'
// advancement script.
const indexLua = historyindex.Lua

// indexScript writes one job's line of an escrow's index. KEYS: the
// index. ARGV: job ID, "<enqueued-at>[ <queue>]", expiry ms, mode ("nx"
// or "set", as index above). Returns 1 when it wrote the line.
var indexScript = redis.NewScript(indexLua + `
return index(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4])
`)

// unindexScript takes a job's line out of an escrow's index if it still
// holds the entry this enqueue wrote, and the index with its last line.
// KEYS: the index. ARGV: job ID, "<enqueued-at>[ <queue>]".
var unindexScript = redis.NewScript(`
local s = redis.call('GET', KEYS[1])
if not s then return 0 end
local line = ARGV[1] .. ' ' .. ARGV[2] .. '\n'
local at = string.find('\n' .. s, '\n' .. line, 1, true)
if not at then return 0 end
s = string.sub(s, 1, at - 1) .. string.sub(s, at + #line)
if s == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], s, 'KEEPTTL')
return 1
`)

// unindexHashScript is unindexScript for the hash of hashHistoryKey.
var unindexHashScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
`)

// indexEntry is the history line of one enqueue. Enqueue hands it to the
// wake publisher (wake.go). On one Redis (not a Cluster) the publisher
// replaces asynq's enqueue script by one that also writes the line, only
// for a job it stores (done, with present for a duplicate). On a Cluster
// the escrow's key is in another slot than the queue's: its script goes
// to its own node in the same round trip, ahead of asynq's (sent), and
// Enqueue settles it after the answer (write). A job whose enqueue then
// fails stays in the index and shows as StateExpired: taking it out could
// drop a job that did land.
type indexEntry struct {
	txID, key, id, value string
	ttl                  time.Duration
	sent                 *redis.Cmd // nil until sent ahead of asynq's script
	// done: the enqueue script dealt with the line: it wrote it for a job
	// it stored, or, for a duplicate, told whether the job had one
	// (present). failed: it could not (the index is not a string).
	done, present, failed bool
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
	return &indexEntry{txID: txID, key: historyKey(txID), id: t.ID, ttl: HistoryTTL + delay,
		value: indexValue(t.ID, t.Queue, now)}
}

// indexValue is what a job's line holds after its ID: the enqueue time,
// and the queue when it is not its type's.
func indexValue(id, queue string, at time.Time) string {
	typ, _, _ := strings.Cut(id, ":")
	typeQueue := ""
	if ty, err := Lookup(typ); err == nil {
		typeQueue = ty.Queue
	}
	return historyindex.Stamp(at) + historyindex.Suffix(queue, typeQueue)
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
// cases cost nothing more: a new job whose line the enqueue wrote, a
// duplicate whose line was there. Otherwise it writes the line on its own
// when the enqueue did not (a script the wake publisher does not
// recognise, Redis had not loaded indexScript, or the write failed), so no
// job of an escrow that Enqueue reports stored is missing from the index;
// it overwrites the line of a job stored again under an ID the index
// still held (asynq had dropped the earlier job); and for a duplicate
// without a line it reads the job asynq holds (in; nil skips the check)
// and writes the line only when that job is this escrow's (a dedupe key
// reused across escrows names another's).
func (ix *indexEntry) write(ctx context.Context, rc redis.UniversalClient, in *asynq.Inspector, queue string, stored bool) error {
	if ix.done && !ix.failed {
		if stored || ix.present {
			return nil
		}
		if in != nil {
			if info, err := in.GetTaskInfo(queue, ix.id); err == nil && storedTransactionID(info.Payload) != ix.txID {
				return nil // another escrow's job
			}
		}
		return ix.run(ctx, rc, "nx")
	}
	var wrote int64
	err := errors.New("not sent")
	if ix.sent != nil {
		wrote, err = ix.sent.Int64()
	}
	if err != nil {
		mode := "nx"
		if stored {
			mode = "set"
		}
		if !stored && in != nil {
			// As above: a duplicate's line only for this escrow's job.
			if info, err := in.GetTaskInfo(queue, ix.id); err == nil && storedTransactionID(info.Payload) != ix.txID {
				return nil
			}
		}
		return ix.run(ctx, rc, mode)
	}
	switch {
	case stored && wrote == 0:
		return ix.run(ctx, rc, "set")
	case !stored && wrote == 1 && in != nil:
		// A duplicate whose job this escrow's index did not name: this
		// escrow's own job whose line was lost (kept), or another's.
		info, err := in.GetTaskInfo(queue, ix.id)
		if err == nil && storedTransactionID(info.Payload) != ix.txID {
			_ = unindexScript.Run(ctx, rc, []string{ix.key}, ix.id, ix.value).Err()
		}
	}
	return nil
}

// run writes the line on its own (indexScript in mode).
func (ix *indexEntry) run(ctx context.Context, rc redis.UniversalClient, mode string) error {
	if err := indexScript.Run(ctx, rc, []string{ix.key}, ix.args(mode)...).Err(); err != nil {
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
			switch r.key {
			case historyKey(transactionID):
				_ = unindexScript.Run(ctx, in.rc, []string{r.key}, id, r.entry).Err()
			case hashHistoryKey(transactionID):
				_ = unindexHashScript.Run(ctx, in.rc, []string{r.key}, id, r.entry).Err()
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
	// key and entry are where its entry is and what it holds after the
	// job ID, for taking it out ("" key: from the formats before the hash).
	key, entry string
}

// indexed reads an escrow's index, and the hash, lines and hash it used
// to be, in one round trip: job ID → its latest entry.
func (in *Inspector) indexed(ctx context.Context, transactionID string) (map[string]indexRef, error) {
	pipe := in.rc.Pipeline()
	index := pipe.Get(ctx, historyKey(transactionID))
	hashed := pipe.HGetAll(ctx, hashHistoryKey(transactionID))
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
	for id, v := range hashed.Val() {
		q, ns, _ := strings.Cut(v, " ")
		refs[id] = indexRef{queue: q, enqueued: unixNanos(ns), key: hashHistoryKey(transactionID), entry: v}
	}
	for line := range strings.Lines(index.Val()) {
		id, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if !ok || id == "" {
			continue
		}
		t36, q, _ := strings.Cut(v, " ")
		if q == "" {
			typ, _, _ := strings.Cut(id, ":")
			ty, err := Lookup(typ)
			if err != nil {
				continue // written with its queue, so never without one
			}
			q = ty.Queue
		}
		var at time.Time
		if n, err := strconv.ParseInt(t36, 36, 64); err == nil {
			at = time.Unix(0, n).UTC()
		}
		refs[id] = indexRef{queue: q, enqueued: at, key: historyKey(transactionID), entry: v}
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
