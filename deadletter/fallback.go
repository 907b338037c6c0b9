package deadletter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultWriteTimeout bounds one Record in the primary ledger of a
// Fallback: a hung database must not hold a worker slot or stall SIGTERM.
const DefaultWriteTimeout = 3 * time.Second

// SpillRetry is how often Run tries the primary again while a spilled
// record waits for it (at most Run's interval): an operator listing the
// dead letters sees one within seconds of the database coming back.
const SpillRetry = 2 * time.Second

// flushActor marks spilled entries that reached the primary ledger.
const flushActor = "ledger-flush"

// Fallback is a Ledger over a primary (PostgreSQL) whose writes are
// bounded by a deadline. A Record that fails or times out is written to
// the spill ledger (a local file) instead, with a log line saying so, and
// Flush (run periodically by Run) moves spilled records to the primary
// once it answers again. Reads and resolutions go to the primary.
type Fallback struct {
	Primary Ledger
	Spill   Ledger
	// Timeout bounds a primary write (DefaultWriteTimeout when zero).
	Timeout time.Duration
	Logger  *slog.Logger

	flushMu  sync.Mutex
	kickOnce sync.Once
	kick     chan struct{} // a record was spilled: Run flushes soon
}

// kicks is the channel Record signals a spill on.
func (f *Fallback) kicks() chan struct{} {
	f.kickOnce.Do(func() { f.kick = make(chan struct{}, 1) })
	return f.kick
}

// Record writes e to the primary within Timeout, else to the spill.
func (f *Fallback) Record(ctx context.Context, e Entry) (bool, error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultWriteTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	ok, err := f.Primary.Record(pctx, e)
	cancel()
	if err == nil {
		return ok, nil
	}
	ok, serr := f.Spill.Record(context.WithoutCancel(ctx), e)
	if serr != nil {
		return false, fmt.Errorf("dead letter %s: primary ledger: %w; spill ledger: %w", e.ID, err, serr)
	}
	f.log().Warn("dead-letter ledger write failed; kept in the spill file, moved to the ledger once it answers",
		"task_id", e.ID, "task_type", e.Type, "queue", e.Queue, "error", err.Error())
	select {
	case f.kicks() <- struct{}{}:
	default: // a flush is already due
	}
	return ok, nil
}

func (f *Fallback) log() *slog.Logger {
	if f.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Logger
}

// Flush moves every spilled record to the primary. It returns how many it
// moved; the first failure stops it (the rest wait for the next Flush).
//
// A spilled record leaves the spill only as the failure it is (job ID,
// run, failure time): the same job may have failed twice while the
// primary was down (a requeued run failing again), and each failure must
// reach the primary. A spill that is a File resolves each failure as it
// reaches the primary; any other spill has a job's records resolved by ID
// only once every one of them reached the primary.
func (f *Fallback) Flush(ctx context.Context) (int, error) {
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	one, _ := f.Spill.(failureDiscarder)
	moved := Resolution{Actor: flushActor, Reason: "moved to the ledger"}
	var byID []string // spills that resolve by ID only: the jobs moved
	seen := map[string]bool{}
	n := 0
	for cursor := ""; ; {
		page, err := f.Spill.List(ctx, Filter{State: StateOpen}, cursor, 100)
		if err != nil {
			return n, err
		}
		for _, e := range page.Entries {
			if _, err := f.Primary.Record(ctx, e); err != nil {
				return n, fmt.Errorf("dead-letter flush %s: %w", e.ID, err)
			}
			moved.At = time.Now()
			switch {
			case one != nil:
				if err := one.discardFailure(e, moved); err != nil {
					return n, err
				}
			case !seen[e.ID]:
				seen[e.ID] = true
				byID = append(byID, e.ID)
			}
			n++
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	for _, id := range byID {
		moved.At = time.Now()
		if _, err := f.Spill.MarkDiscarded(ctx, id, moved); err != nil && !errors.Is(err, ErrNotOpen) {
			return n, err
		}
	}
	if n > 0 {
		if _, err := f.Spill.Purge(ctx, time.Now().Add(time.Second)); err != nil {
			return n, err
		}
		f.log().Info("dead-letter spill flushed to the ledger", "moved", n)
	}
	return n, nil
}

// failureDiscarder is a spill that resolves one failure of a job and
// leaves the job's other failures open (File does).
type failureDiscarder interface {
	discardFailure(e Entry, r Resolution) error
}

// discardFailure resolves as discarded the open entry that is e's failure
// (same Seq, job ID, run and failure time); the job's other entries, and
// an e already resolved, are left as they are.
func (l *File) discardFailure(e Entry, r Resolution) error {
	return l.locked(func() error {
		i, ok := l.bySeq[e.Seq]
		if !ok {
			return nil
		}
		cur := l.entries[i]
		if cur.State != StateOpen || cur.ID != e.ID || cur.Run != e.Run || !cur.FailedAt.Equal(e.FailedAt) {
			return nil
		}
		at := r.At.UTC().Truncate(time.Microsecond)
		ln := fileLine{Op: "resolve", Seqs: []int64{cur.Seq}, Entry: Entry{ID: cur.ID, State: StateDiscarded, Actor: r.Actor, Reason: r.Reason, ResolvedAt: &at}}
		if err := l.appendLine(ln); err != nil {
			return err
		}
		c := &l.entries[i]
		c.State, c.Actor, c.Reason, c.ResolvedAt = StateDiscarded, r.Actor, r.Reason, &at
		return nil
	})
}

// Run flushes every interval until ctx is done, and every SpillRetry (at
// most every) from a spill until a flush succeeds. A primary that stays
// down is logged once per interval, not at every retry.
func (f *Fallback) Run(ctx context.Context, every time.Duration) {
	retry := min(every, SpillRetry)
	t := time.NewTimer(every)
	defer t.Stop()
	var warned time.Time
	for {
		wait := every
		if _, err := f.Flush(ctx); err != nil && ctx.Err() == nil {
			wait = retry
			if time.Since(warned) >= every {
				warned = time.Now()
				f.log().Warn("dead-letter spill not flushed yet", "error", err.Error())
			}
		} else {
			warned = time.Time{}
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.kicks():
			// A record was just spilled: the primary failed a moment ago,
			// so try it again after retry, not at once.
			t.Reset(retry)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}

// List lists the primary.
func (f *Fallback) List(ctx context.Context, flt Filter, cursor string, limit int) (Page, error) {
	return f.Primary.List(ctx, flt, cursor, limit)
}

// Get reads the primary, then the spill.
func (f *Fallback) Get(ctx context.Context, id string) (Entry, error) {
	e, err := f.Primary.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		if se, serr := f.Spill.Get(ctx, id); serr == nil && se.State == StateOpen {
			return se, nil
		}
	}
	return e, err
}

// MarkRequeued resolves in the primary, after flushing the spill so that a
// spilled failure of the job is resolved too.
func (f *Fallback) MarkRequeued(ctx context.Context, id string, r Resolution) (int, error) {
	_, _ = f.Flush(ctx)
	return f.Primary.MarkRequeued(ctx, id, r)
}

// MarkDiscarded resolves in the primary, after flushing the spill.
func (f *Fallback) MarkDiscarded(ctx context.Context, id string, r Resolution) (int, error) {
	_, _ = f.Flush(ctx)
	return f.Primary.MarkDiscarded(ctx, id, r)
}

// Purge purges the primary.
func (f *Fallback) Purge(ctx context.Context, before time.Time) (int, error) {
	return f.Primary.Purge(ctx, before)
}
