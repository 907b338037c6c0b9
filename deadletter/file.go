package deadletter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/escrowjobs/escrowjobs/internal/jsonl"
)

// File is a Ledger in an append-only JSON-lines file (internal/jsonl): one
// line per event (a failure recorded, dead letters resolved), folded into
// memory on read. Every append is fsynced before it returns; when the
// fsync fails the event is not taken as done, so a retried Record may
// write the failure a second time, and reading folds the copy away by the
// package's same-failure rule: it is never listed twice. A torn last line
// (a crash mid-write) is kept, and folded only if it decodes; the next
// event starts on a fresh line. Purge compacts the file (write a new one,
// fsync, rename).
//
// Several processes may share the file (the worker records, the monitor
// and jobctl resolve): every operation takes an flock on path+".lock" and
// first folds what the others appended, and notices a compaction by the
// file's identity.
type File struct {
	mu   sync.Mutex
	path string
	lock *os.File

	f       *jsonl.File // the open file; nil before the first read and after a compaction
	entries []Entry     // by Seq order of appearance
	bySeq   map[int64]int
	byID    map[string][]int
	order   []int // indexes of entries, most recent failure first
	maxSeq  int64
}

// fileLine is one line of the file: a record (op "" or "record", with
// legacy fields of files written before the ledger) or a resolution.
type fileLine struct {
	Op  string `json:"op,omitempty"`
	Seq int64  `json:"seq,omitempty"`
	Entry
	// record: the exact payload, as text (valid UTF-8) or else as bytes;
	// the JSON payload field is read only from files written before the
	// ledger (encoding/json would reformat it).
	Payload      json.RawMessage `json:"payload,omitempty"`
	PayloadText  *string         `json:"payloadText,omitempty"`
	PayloadBytes []byte          `json:"payloadBytes,omitempty"`
	// resolve: the entries it resolves
	Seqs []int64 `json:"seqs,omitempty"`
	// written before the ledger (masked payload, no state)
	LastError  string     `json:"lastError,omitempty"`
	Permanent  bool       `json:"permanent,omitempty"`
	ArchivedAt *time.Time `json:"archivedAt,omitempty"`
}

// OpenFile opens (creating if needed, mode 0600) the ledger file at path.
func OpenFile(path string) (*File, error) {
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dead-letter ledger: open %s.lock: %w", path, err)
	}
	l := &File{path: path, lock: lock}
	if err := l.locked(func() error { return nil }); err != nil {
		lock.Close()
		return nil, err
	}
	return l, nil
}

// Path is the file's path.
func (l *File) Path() string { return l.path }

// String names the ledger for logs and the console: "file <path>".
func (l *File) String() string { return "file " + l.path }

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.f != nil {
		err = l.f.Close()
		l.f = nil
	}
	return errors.Join(err, l.lock.Close())
}

// locked runs f holding the process mutex and the file lock, after folding
// what other processes appended.
func (l *File) locked(f func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	unlock, err := jsonl.Lock(l.lock)
	if err != nil {
		return fmt.Errorf("dead-letter ledger: lock %s: %w", l.path, err)
	}
	defer unlock()
	if err := l.catchUp(); err != nil {
		return err
	}
	return f()
}

// catchUp (re)opens the file if it is new or was replaced by a compaction,
// and folds the lines appended since the last call.
func (l *File) catchUp() error {
	if l.f != nil && l.f.Replaced() {
		l.f.Close()
		l.f = nil
	}
	if l.f == nil {
		f, err := jsonl.Open(l.path)
		if err != nil {
			return fmt.Errorf("dead-letter ledger: %w", err)
		}
		l.f, l.entries, l.maxSeq = f, nil, 0
		l.bySeq, l.byID, l.order = map[int64]int{}, map[string][]int{}, nil
	}
	if err := l.f.ReadNew(l.fold); err != nil {
		return fmt.Errorf("dead-letter ledger: %w", err)
	}
	return nil
}

// fold applies one line; a line that does not decode is skipped.
func (l *File) fold(b []byte) {
	var ln fileLine
	if len(bytes.TrimSpace(b)) == 0 || json.Unmarshal(b, &ln) != nil {
		return
	}
	switch ln.Op {
	case "", "record":
		e := ln.Entry
		if e.ID == "" {
			return
		}
		switch {
		case ln.PayloadText != nil:
			e.Payload = json.RawMessage(*ln.PayloadText)
		case ln.PayloadBytes != nil:
			e.Payload = json.RawMessage(ln.PayloadBytes)
		default:
			e.Payload = ln.Payload
		}
		if ln.ArchivedAt != nil && e.FailedAt.IsZero() { // written before the ledger
			e.FailedAt, e.Error, e.PayloadInexact = ln.ArchivedAt.UTC(), ln.LastError, true
			e.Why = WhyExhausted
			if ln.Permanent {
				e.Why = WhyPermanent
			}
		}
		if e.State == "" {
			e.State = StateOpen
		}
		for _, i := range l.byID[e.ID] {
			if sameFailure(l.entries[i], e) {
				// The same failure written again: a Record retried after
				// its fsync failed appends it once more (jsonl). Folded
				// by Record's own rule, so it shows once.
				return
			}
		}
		e.Seq = ln.Seq
		if e.Seq <= l.maxSeq {
			e.Seq = l.maxSeq + 1
		}
		l.add(e)
	case "resolve":
		for _, s := range ln.Seqs {
			if i, ok := l.bySeq[s]; ok {
				e := &l.entries[i]
				e.State, e.Actor, e.Reason, e.ResolvedAt = ln.State, ln.Actor, ln.Reason, ln.ResolvedAt
			}
		}
	}
}

func (l *File) add(e Entry) {
	i := len(l.entries)
	l.entries = append(l.entries, e)
	l.bySeq[e.Seq] = i
	l.byID[e.ID] = append(l.byID[e.ID], i)
	l.maxSeq = max(l.maxSeq, e.Seq)
	// Keep order most recent first; a new failure is usually the newest.
	pos, _ := slices.BinarySearchFunc(l.order, e, func(j int, t Entry) int {
		if before(l.entries[j], t) {
			return -1
		}
		return 1
	})
	l.order = slices.Insert(l.order, pos, i)
}

// before reports whether a comes before b in List's order.
func before(a, b Entry) bool {
	if a.FailedAt.Equal(b.FailedAt) {
		return a.Seq > b.Seq
	}
	return a.FailedAt.After(b.FailedAt)
}

// recordLine is the line that records e, its payload kept byte for byte.
func recordLine(e Entry) fileLine {
	ln := fileLine{Op: "record", Seq: e.Seq, Entry: e}
	if utf8.Valid(e.Payload) {
		s := string(e.Payload)
		ln.PayloadText = &s
	} else {
		ln.PayloadBytes = e.Payload
	}
	return ln
}

// appendLine writes one event and fsyncs.
func (l *File) appendLine(ln fileLine) error {
	b, err := json.Marshal(ln)
	if err != nil {
		return fmt.Errorf("dead-letter ledger: encode %s: %w", ln.ID, err)
	}
	if err := l.f.Append(b); err != nil {
		return fmt.Errorf("dead-letter ledger: %w", err)
	}
	return nil
}

// Record appends e as an open dead letter unless the file holds this
// failure already.
func (l *File) Record(_ context.Context, e Entry) (bool, error) {
	e, err := Normalize(e)
	if err != nil {
		return false, err
	}
	recorded := false
	err = l.locked(func() error {
		for _, i := range l.byID[e.ID] {
			if sameFailure(l.entries[i], e) {
				return nil
			}
		}
		e.Seq = l.maxSeq + 1
		if err := l.appendLine(recordLine(e)); err != nil {
			return err
		}
		l.add(e)
		recorded = true
		return nil
	})
	return recorded, err
}

// List returns a page of entries matching f, most recent failure first.
func (l *File) List(_ context.Context, f Filter, cursor string, limit int) (Page, error) {
	c, has, err := DecodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	page := Page{Entries: []Entry{}}
	if limit <= 0 {
		return page, nil
	}
	err = l.locked(func() error {
		start := 0
		if has {
			start, _ = slices.BinarySearchFunc(l.order, c, func(j int, c Cursor) int {
				if c.After(l.entries[j]) {
					return 1
				}
				return -1
			})
		}
		for _, j := range l.order[start:] {
			e := l.entries[j]
			if !f.Match(e) {
				continue
			}
			if len(page.Entries) == limit {
				page.Next = EncodeCursor(page.Entries[limit-1])
				break
			}
			page.Entries = append(page.Entries, e)
		}
		return nil
	})
	return page, err
}

// Get returns the job's most recent dead letter.
func (l *File) Get(_ context.Context, id string) (Entry, error) {
	var out Entry
	err := l.locked(func() error {
		found := false
		for _, i := range l.byID[id] {
			if e := l.entries[i]; !found || before(e, out) {
				out, found = e, true
			}
		}
		if !found {
			return fmt.Errorf("job %s: %w", id, ErrNotFound)
		}
		return nil
	})
	return out, err
}

// History returns every dead letter of the job, one per failed run, most
// recent failure first, or ErrNotFound.
func (l *File) History(_ context.Context, id string) ([]Entry, error) {
	var out []Entry
	err := l.locked(func() error {
		for _, i := range l.byID[id] {
			out = append(out, l.entries[i])
		}
		if len(out) == 0 {
			return fmt.Errorf("job %s: %w", id, ErrNotFound)
		}
		slices.SortFunc(out, func(a, b Entry) int {
			if before(a, b) {
				return -1
			}
			return 1
		})
		return nil
	})
	return out, err
}

// MarkRequeued resolves the job's open dead letters as requeued.
func (l *File) MarkRequeued(_ context.Context, id string, r Resolution) (int, error) {
	return l.resolve(id, StateRequeued, r)
}

// MarkDiscarded resolves the job's open dead letters as discarded.
func (l *File) MarkDiscarded(_ context.Context, id string, r Resolution) (int, error) {
	r.Run = "" // no open entry is spared
	return l.resolve(id, StateDiscarded, r)
}

func (l *File) resolve(id, state string, r Resolution) (int, error) {
	n := 0
	err := l.locked(func() error {
		ids := l.byID[id]
		if len(ids) == 0 {
			return fmt.Errorf("job %s: %w", id, ErrNotFound)
		}
		var seqs []int64
		for _, i := range ids {
			if e := l.entries[i]; e.State == StateOpen && (r.Run == "" || e.Run != r.Run) {
				seqs = append(seqs, e.Seq)
			}
		}
		if len(seqs) == 0 {
			return fmt.Errorf("job %s: %w", id, ErrNotOpen)
		}
		at := r.At.UTC().Truncate(time.Microsecond)
		ln := fileLine{Op: "resolve", Seqs: seqs, Entry: Entry{ID: id, State: state, Actor: r.Actor, Reason: r.Reason, ResolvedAt: &at}}
		if err := l.appendLine(ln); err != nil {
			return err
		}
		for _, s := range seqs {
			e := &l.entries[l.bySeq[s]]
			e.State, e.Actor, e.Reason, e.ResolvedAt = state, r.Actor, r.Reason, &at
		}
		n = len(seqs)
		return nil
	})
	return n, err
}

// Purge rewrites the file without the requeued and discarded entries
// resolved before before. The new file is fsynced before it replaces the
// old one, so a crash leaves one or the other, whole.
func (l *File) Purge(_ context.Context, before time.Time) (int, error) {
	n := 0
	err := l.locked(func() error {
		var keep []Entry
		for _, e := range l.entries {
			if e.State != StateOpen && e.ResolvedAt != nil && e.ResolvedAt.Before(before) {
				n++
				continue
			}
			keep = append(keep, e)
		}
		if n == 0 {
			return nil
		}
		tmp, err := os.CreateTemp(filepath.Dir(l.path), filepath.Base(l.path)+".compact-*")
		if err != nil {
			return fmt.Errorf("dead-letter ledger: compact %s: %w", l.path, err)
		}
		defer os.Remove(tmp.Name())
		var buf bytes.Buffer
		for _, e := range keep {
			b, err := json.Marshal(recordLine(e))
			if err != nil {
				tmp.Close()
				return fmt.Errorf("dead-letter ledger: compact %s: %w", l.path, err)
			}
			buf.Write(b)
			buf.WriteByte('\n')
		}
		if _, err := tmp.Write(buf.Bytes()); err != nil {
			tmp.Close()
			return fmt.Errorf("dead-letter ledger: compact %s: %w", l.path, err)
		}
		if err := tmp.Chmod(0o600); err != nil {
			tmp.Close()
			return fmt.Errorf("dead-letter ledger: compact %s: %w", l.path, err)
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return fmt.Errorf("dead-letter ledger: compact %s: %w", l.path, err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("dead-letter ledger: compact %s: %w", l.path, err)
		}
		if err := os.Rename(tmp.Name(), l.path); err != nil {
			return fmt.Errorf("dead-letter ledger: compact %s: %w", l.path, err)
		}
		if dir, err := os.Open(filepath.Dir(l.path)); err == nil {
			_ = dir.Sync()
			dir.Close()
		}
		l.f.Close()
		l.f = nil
		return l.catchUp()
	})
	return n, err
}
