package repair

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// ErrReasonRequired is returned by Discard without a reason.
var ErrReasonRequired = errors.New("a reason is required")

// ErrCannotRebuild is returned by Requeue for a dead letter asynq no longer
// holds whose ledger record cannot rebuild it (recorded before the ledger
// kept exact payloads).
var ErrCannotRebuild = errors.New("cannot rebuild the job from the ledger")

// ErrStillActive is returned by Requeue for a dead letter whose job asynq
// has not archived yet: the worker records the failure in its error
// handler, which asynq runs just before it archives the job. Nothing was
// changed; requeue again in a moment.
var ErrStillActive = errors.New("the job is still finishing its last attempt; requeue it once it is archived")

// Desk lists and repairs dead letters: the ledger (deadletter.Ledger) is
// the source of truth, asynq's archive a cache of it. It is its own type
// rather than more tasks.Inspector methods because it needs both stores,
// while the Inspector (status, stats) needs Redis alone.
type Desk struct {
	in     *tasks.Inspector
	ledger deadletter.Ledger
	// afterMove runs between putting the job back in Redis and recording
	// that in the ledger (tests inject a failure there).
	afterMove func() error
	// beforeMove runs between a requeue's read of the ledger and putting
	// the job back (tests interleave a discard there).
	beforeMove func()
	// flows is told when the dead letter of a flow step is requeued or
	// discarded.
	flows FlowRepairs
}

// FlowRepairs is told what became of the dead letter of a flow step
// (flows.Store).
type FlowRepairs interface {
	Requeued(ctx context.Context, flowID, step string) error
	Discarded(ctx context.Context, flowID, step string) error
}

// NewDesk repairs dead letters over in's Redis and ledger l. The dead
// letter of a flow step (Entry.Flow) also repairs its flow, in the flow
// store on in's Redis: a requeue makes the flow running again, a discard
// cancels it.
func NewDesk(in *tasks.Inspector, l deadletter.Ledger) *Desk {
	return &Desk{in: in, ledger: l, flows: flows.NewStore(in.Redis(), in)}
}

// Ledger is the ledger d reads and writes.
func (d *Desk) Ledger() deadletter.Ledger { return d.ledger }

// Inspector is the Redis side of the desk.
func (d *Desk) Inspector() *tasks.Inspector { return d.in }

// List returns a page of dead letters, most recent failure first, with
// their exact payloads (mask with Entry.Masked before showing them).
func (d *Desk) List(ctx context.Context, f deadletter.Filter, cursor string, limit int) (deadletter.Page, error) {
	if err := f.Validate(); err != nil {
		return deadletter.Page{}, err
	}
	return d.ledger.List(ctx, f, cursor, limit)
}

// Get returns the job's most recent dead letter.
func (d *Desk) Get(ctx context.Context, id string) (deadletter.Entry, error) {
	e, err := d.ledger.Get(ctx, id)
	if errors.Is(err, deadletter.ErrNotFound) {
		// Archived but not (yet) in the ledger: record it now.
		e2, rerr := d.recordFromArchive(ctx, id)
		switch {
		case rerr == nil:
			return e2, nil
		case !errors.Is(rerr, deadletter.ErrNotFound) && !errors.Is(rerr, tasks.ErrNotFound):
			return e, rerr // Redis did not answer: not "not found"
		}
	}
	return e, err
}

// recordFromArchive records an archived job the ledger does not hold.
func (d *Desk) recordFromArchive(ctx context.Context, id string) (deadletter.Entry, error) {
	t, err := d.in.Find(ctx, id)
	if err != nil {
		return deadletter.Entry{}, err
	}
	if t.State != asynq.TaskStateArchived {
		return deadletter.Entry{}, fmt.Errorf("job %s: %w", id, deadletter.ErrNotFound)
	}
	if _, err := d.ledger.Record(ctx, EntryFromTask(t)); err != nil {
		return deadletter.Entry{}, err
	}
	return d.ledger.Get(ctx, id)
}

// EntryFromTask is the dead letter of an archived task as asynq holds it
// (with its flow and step, for a job of a flow).
func EntryFromTask(t *asynq.TaskInfo) deadletter.Entry {
	why := deadletter.WhyPermanent
	switch {
	case strings.Contains(t.LastErr, asynq.ErrLeaseExpired.Error()):
		why = deadletter.WhyCrashed
	case t.Retried >= t.MaxRetry:
		why = deadletter.WhyExhausted
	}
	failed := t.LastFailedAt
	if failed.IsZero() {
		failed = time.Now()
	}
	return flows.Entry(deadletter.Entry{
		ID: t.ID, Type: t.Type, Queue: t.Queue, Run: t.Headers[deadletter.RunHeader],
		Payload: t.Payload, Error: t.LastErr, Attempts: t.Retried + 1, FailedAt: failed, Why: why,
	}, t.Headers)
}

// newRun makes a fresh RunHeader value.
func newRun() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Requeue runs the dead letter id again with its full retry budget (one
// attempt plus three retries) under the same job ID, and records in the
// ledger that actor requeued it, and why.
//
// The job is never in neither place: when asynq still holds it archived,
// one Redis transaction moves it back to pending; when asynq has dropped
// it, the same kind of transaction rebuilds it from the ledger's exact
// payload (putBack). Only then is the ledger record marked
// requeued. If that last write fails, the job runs and the record stays
// open; Requeue again finds the marker of the first requeue, does not put
// the job back a second time, and completes the record. A requeue that a
// discard of the same dead letter got to first changes nothing and wraps
// ErrConflict: the job does not run.
func (d *Desk) Requeue(ctx context.Context, id, actor, reason string) (deadletter.Entry, error) {
	e, err := d.Get(ctx, id)
	if err != nil {
		return e, fmt.Errorf("requeue: %w", err)
	}
	if e.State != deadletter.StateOpen {
		return e, fmt.Errorf("requeue %s: %s by %s at %s: %w", id, e.State, e.Actor, stampOf(e.ResolvedAt), deadletter.ErrNotOpen)
	}
	if d.beforeMove != nil {
		d.beforeMove()
	}
	run, where, err := putBack(ctx, d.in, e, newRun())
	if err != nil {
		return e, err
	}
	if d.afterMove != nil {
		if err := d.afterMove(); err != nil {
			return e, fmt.Errorf("requeue %s: the job is back in queue %s (%s), but the ledger was not updated; requeue again to record it: %w", id, e.Queue, where, err)
		}
	}
	if e.Flow != "" {
		// After the job is back (a step that completes meanwhile is
		// completed in the flow, and this changes nothing), before the
		// ledger: a failure here is repaired by requeueing again.
		if err := d.flows.Requeued(ctx, e.Flow, e.Step); err != nil && !errors.Is(err, flows.ErrNotFound) {
			return e, fmt.Errorf("requeue %s: the job is back in queue %s (%s), but its flow %s was not updated; requeue again to record it: %w", id, e.Queue, where, e.Flow, err)
		}
	}
	_, err = d.ledger.MarkRequeued(ctx, id, deadletter.Resolution{Actor: actor, Reason: reason, At: time.Now(), Run: run})
	switch {
	case errors.Is(err, deadletter.ErrNotOpen):
		// Resolved meanwhile: by a requeue running alongside (fine), or
		// discarded, which only a job kept out of Redis allows (takeOut).
		cur, gerr := d.ledger.Get(ctx, id)
		if gerr == nil && cur.State == deadletter.StateDiscarded {
			return cur, fmt.Errorf("requeue %s: discarded by %s at %s while it was being requeued; it does not run: %w", id, cur.Actor, stampOf(cur.ResolvedAt), ErrConflict)
		}
	case err != nil:
		return e, fmt.Errorf("requeue %s: the job is back in queue %s (%s), but the ledger was not updated; requeue again to record it: %w", id, e.Queue, where, err)
	}
	return d.ledger.Get(ctx, id)
}

// Bulk is the answer of RequeueMatching.
type Bulk struct {
	Matched  int      `json:"matched"`
	Requeued int      `json:"requeued"`
	IDs      []string `json:"ids"`
	// Failed maps the IDs that could not be requeued to why.
	Failed map[string]string `json:"failed,omitempty"`
}

// RequeueMatching requeues every open dead letter matching f, as Requeue
// does one. With dryRun it only says which it would requeue.
func (d *Desk) RequeueMatching(ctx context.Context, f deadletter.Filter, dryRun bool, actor, reason string) (Bulk, error) {
	f.State = deadletter.StateOpen
	if err := f.Validate(); err != nil {
		return Bulk{}, err
	}
	// Collect first (the requeues change what matches), one ID once.
	var ids []string
	seen := map[string]bool{}
	for cursor := ""; ; {
		p, err := d.ledger.List(ctx, f, cursor, 500)
		if err != nil {
			return Bulk{}, err
		}
		for _, e := range p.Entries {
			if !seen[e.ID] {
				seen[e.ID] = true
				ids = append(ids, e.ID)
			}
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	b := Bulk{Matched: len(ids), IDs: []string{}}
	if dryRun {
		b.IDs = ids
		return b, nil
	}
	for _, id := range ids {
		if _, err := d.Requeue(ctx, id, actor, reason); err != nil {
			if b.Failed == nil {
				b.Failed = map[string]string{}
			}
			b.Failed[id] = err.Error()
			continue
		}
		b.Requeued++
		b.IDs = append(b.IDs, id)
	}
	return b, nil
}

// Discard resolves the dead letter without a rerun. First one Redis
// transaction (takeOut) deletes asynq's archived copy, if any, so the job
// ID is free again, and leaves a tombstone that a requeue of this dead
// letter refuses; then the ledger records actor and reason (it keeps the
// exact payload). A discard never lets the job run: when a requeue of this
// dead letter has put the job back (its ledger write still to come, or
// failed), or a job of that ID is running or waiting in a queue, nothing
// is changed and the error wraps ErrConflict. If the ledger write fails,
// the job stays out of Redis and the record open: Discard again records
// it.
func (d *Desk) Discard(ctx context.Context, id, actor, reason string) (deadletter.Entry, error) {
	if strings.TrimSpace(reason) == "" {
		return deadletter.Entry{}, fmt.Errorf("discard %s: %w", id, ErrReasonRequired)
	}
	e, err := d.Get(ctx, id)
	if err != nil {
		return e, fmt.Errorf("discard: %w", err)
	}
	if e.State != deadletter.StateOpen {
		return e, fmt.Errorf("discard %s: %s by %s at %s: %w", id, e.State, e.Actor, stampOf(e.ResolvedAt), deadletter.ErrNotOpen)
	}
	if err := takeOut(ctx, d.in.Redis(), e); err != nil {
		return e, fmt.Errorf("discard %s: %w", id, err)
	}
	if e.Flow != "" {
		// Before the ledger, so a failure leaves the dead letter open and
		// a second discard repeats this (the flow's change is idempotent).
		if err := d.flows.Discarded(ctx, e.Flow, e.Step); err != nil && !errors.Is(err, flows.ErrNotFound) {
			return e, fmt.Errorf("discard %s: its flow %s: %w", id, e.Flow, err)
		}
	}
	if err := releaseInOrder(ctx, d.in.Redis(), e); err != nil {
		// Before the ledger, like the flow: a second discard repeats it.
		return e, fmt.Errorf("discard %s: release the later events of its escrow: %w", id, err)
	}
	if _, err := d.ledger.MarkDiscarded(ctx, id, deadletter.Resolution{Actor: actor, Reason: reason, At: time.Now()}); err != nil {
		return e, fmt.Errorf("discard %s: %w", id, err)
	}
	return d.ledger.Get(ctx, id)
}

// Purge deletes requeued and discarded dead letters resolved more than
// retention ago; open ones stay, however old.
func (d *Desk) Purge(ctx context.Context, retention time.Duration) (int, error) {
	return d.ledger.Purge(ctx, time.Now().Add(-retention))
}

func stampOf(t *time.Time) string {
	if t == nil {
		return "?"
	}
	return t.UTC().Format(time.RFC3339)
}
