package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/escrowjobs/escrowjobs/internal/jsonl"
	"github.com/escrowjobs/escrowjobs/payloads"
)

// Record is one line of the audit file: the event as it was written, and
// when the sink stored it.
type Record struct {
	payloads.AuditLogCreated
	RecordedAt time.Time `json:"recordedAt"`
}

// Bounds of a File's memory of event IDs.
//
// An event already in the file reaches the sink again only as a retry of
// its job (seconds), a job rerun by asynq's lease recovery (at most about
// two minutes), a job held through a Redis outage, or the producer
// enqueueing the same event again, which the job ID refuses for an hour
// after completion (tasks.Retention). 25 hours covers all of these with a
// wide margin (and a day of Stripe-style replays). An event that comes back
// after that is appended a second time; readers key lines by eventId.
const (
	// DefaultRememberFor is how long an event ID is remembered after it
	// was recorded.
	DefaultRememberFor = 25 * time.Hour
	// DefaultRememberAtMost caps the event IDs remembered (about 150 bytes
	// each, so at most about 75 MB), whatever the volume.
	DefaultRememberAtMost = 500_000
)

// FileOption changes how a File remembers event IDs.
type FileOption func(*File)

// RememberFor sets how long an event ID is remembered (DefaultRememberFor).
func RememberFor(d time.Duration) FileOption { return func(l *File) { l.window = d } }

// RememberAtMost caps the event IDs remembered (DefaultRememberAtMost).
func RememberAtMost(n int) FileOption { return func(l *File) { l.max = n } }

// File is an audit sink in an append-only JSON-lines file (internal/jsonl).
// Writing an eventId that is already in the file (within the remembered
// window) is a no-op. It is safe for concurrent use, also by several
// processes on one host sharing the file: every write takes an exclusive
// lock on the file (flock), first reads what other writers appended since,
// and appends and fsyncs while it holds the lock. (flock does not lock
// across hosts on network file systems: use AUDIT_DATABASE_URL for workers
// on several machines.)
type File struct {
	mu     sync.Mutex
	path   string
	file   *jsonl.File
	window time.Duration
	max    int
	now    func() time.Time

	seen  map[string]time.Time // event ID -> when it was recorded
	order []remembered         // the same, oldest first
	head  int                  // order[:head] are forgotten
}

type remembered struct {
	id string
	at time.Time
}

// OpenFile opens (creating if needed) the audit file at path and reads it
// to learn which eventIds it already holds. A last line cut short by a crash
// is kept (the file is append-only) but not counted, and the next event
// starts on a new line.
func OpenFile(path string, opts ...FileOption) (*File, error) {
	file, err := jsonl.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &File{path: path, file: file, seen: make(map[string]time.Time),
		window: DefaultRememberFor, max: DefaultRememberAtMost, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	if err := l.locked(l.catchUp); err != nil {
		file.Close()
		return nil, err
	}
	return l, nil
}

// locked runs fn holding the exclusive lock on the file.
func (l *File) locked(fn func() error) error {
	unlock, err := l.file.Lock()
	if errors.Is(err, jsonl.ErrNoLock) {
		err = fmt.Errorf("AUDIT_LOG_PATH: %w; use AUDIT_DATABASE_URL", err)
	}
	if err != nil {
		return fmt.Errorf("audit log: lock %s: %w", l.path, err)
	}
	defer unlock()
	return fn()
}

// catchUp remembers the events of the lines appended since it last ran (by
// this process or another), a torn last line included when it decodes. The
// caller holds the file lock.
func (l *File) catchUp() error {
	cutoff := l.now().Add(-l.window)
	err := l.file.ReadNew(func(line []byte) {
		var rec Record
		if json.Unmarshal(bytes.TrimSpace(line), &rec) == nil && rec.EventID != "" {
			if rec.RecordedAt.IsZero() { // age unknown: remember it as new
				rec.RecordedAt = l.now()
			}
			if rec.RecordedAt.After(cutoff) {
				l.remember(rec.EventID, rec.RecordedAt)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// remember adds id and forgets what falls out of the window or the cap.
func (l *File) remember(id string, at time.Time) {
	l.seen[id] = at
	l.order = append(l.order, remembered{id: id, at: at})
	cutoff := l.now().Add(-l.window)
	for l.head < len(l.order) && (len(l.order)-l.head > l.max || l.order[l.head].at.Before(cutoff)) {
		old := l.order[l.head]
		if l.seen[old.id].Equal(old.at) { // not remembered again since
			delete(l.seen, old.id)
		}
		l.order[l.head] = remembered{}
		l.head++
	}
	if l.head > 1024 && l.head > len(l.order)/2 { // reclaim the forgotten prefix
		l.order = append(l.order[:0:0], l.order[l.head:]...)
		l.head = 0
	}
}

// known reports whether id is remembered as recorded within the window.
func (l *File) known(id string) bool {
	at, ok := l.seen[id]
	return ok && at.After(l.now().Add(-l.window))
}

// Remembered is the number of event IDs the sink remembers now.
func (l *File) Remembered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// WriteAudit appends e as one line and fsyncs, unless e.EventID is already
// in the file. An event that cannot be encoded is a permanent failure
// (asynq.SkipRetry). If the fsync fails the event is not marked as stored,
// so a retry may append it a second time: a duplicate line rather than a
// lost event. Readers key lines by eventId.
func (l *File) WriteAudit(ctx context.Context, e payloads.AuditLogCreated) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit log: write %s: %w", e.EventID, err)
	}
	if e.EventID == "" {
		return fmt.Errorf("audit log: event without eventId: %w", asynq.SkipRetry)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.known(e.EventID) {
		return nil
	}
	return l.locked(func() error {
		if err := l.catchUp(); err != nil {
			return err
		}
		if l.known(e.EventID) { // another process wrote it
			return nil
		}
		now := l.now().UTC()
		b, err := json.Marshal(Record{AuditLogCreated: e, RecordedAt: now})
		if err != nil {
			return fmt.Errorf("audit log: encode %s: %w: %w", e.EventID, err, asynq.SkipRetry)
		}
		if err := l.file.Append(b); err != nil {
			return fmt.Errorf("audit log: event %s: %w", e.EventID, err)
		}
		l.remember(e.EventID, now)
		return nil
	})
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.file.Close(); err != nil {
		return fmt.Errorf("audit log: close %s: %w", l.path, err)
	}
	return nil
}
