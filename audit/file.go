package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// Record is one line of the audit file: the event as it was written, and
// when the sink stored it.
type Record struct {
	payloads.AuditLogCreated
	RecordedAt time.Time `json:"recordedAt"`
}

// File is an audit sink in an append-only JSON-lines file. Writing an
// eventId that is already in the file is a no-op. It is safe for concurrent
// use by the goroutines of one process; two processes must not share a file.
type File struct {
	mu   sync.Mutex
	path string
	f    *os.File
	seen map[string]struct{}
	// torn is set when a write may have left a partial line; the next write
	// starts a new line first so it does not join the torn one.
	torn bool
}

// OpenFile opens (creating if needed) the audit file at path and reads it
// to learn which eventIds it already holds. A last line cut short by a crash
// is kept (the file is append-only) but not counted, and the next event
// starts on a new line.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: open %s: %w", path, err)
	}
	l := &File{path: path, f: f, seen: make(map[string]struct{})}
	if err := l.load(); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// load reads every line from the start of the file into l.seen.
func (l *File) load() error {
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("audit log: read %s: %w", l.path, err)
	}
	r := bufio.NewReaderSize(l.f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			complete := line[len(line)-1] == '\n'
			var rec Record
			if json.Unmarshal(bytes.TrimSpace(line), &rec) == nil && rec.EventID != "" {
				l.seen[rec.EventID] = struct{}{}
			}
			if !complete {
				l.torn = true
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit log: read %s: %w", l.path, err)
		}
	}
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
	if _, ok := l.seen[e.EventID]; ok {
		return nil
	}
	b, err := json.Marshal(Record{AuditLogCreated: e, RecordedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("audit log: encode %s: %w: %w", e.EventID, err, asynq.SkipRetry)
	}
	b = append(b, '\n')
	if l.torn {
		b = append([]byte{'\n'}, b...)
	}
	if _, err := l.f.Write(b); err != nil {
		l.torn = true
		return fmt.Errorf("audit log: write %s to %s: %w", e.EventID, l.path, err)
	}
	l.torn = false
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit log: sync %s: %w", l.path, err)
	}
	l.seen[e.EventID] = struct{}{}
	return nil
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("audit log: close %s: %w", l.path, err)
	}
	return nil
}
