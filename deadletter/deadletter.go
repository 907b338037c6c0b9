// Package deadletter keeps a durable record of every archived job.
//
// asynq's archive is capped (10,000 jobs per queue, oldest dropped silently)
// and lives in Redis. Every job the worker archives is therefore also
// written here: to an append-only JSON-lines file by default ([File]), or to
// PostgreSQL (package postgres). Payloads and errors are stored with e-mail
// addresses masked; the job itself stays requeueable from asynq's archive.
package deadletter

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// Entry is one archived job.
type Entry struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Queue      string          `json:"queue"`
	Payload    json.RawMessage `json:"payload"`
	LastError  string          `json:"lastError"`
	Attempts   int             `json:"attempts"`
	Permanent  bool            `json:"permanent"`
	ArchivedAt time.Time       `json:"archivedAt"`
}

// Log is a durable dead-letter log.
type Log interface {
	// Record appends e. It must be durable when it returns nil.
	Record(ctx context.Context, e Entry) error
	// List returns up to limit entries, newest first.
	List(ctx context.Context, limit int) ([]Entry, error)
}

// File is a Log in an append-only JSON-lines file, fsynced on every record.
type File struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

// OpenFile opens (creating if needed) the dead-letter file at path.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dead-letter log: open %s: %w", path, err)
	}
	// A crash mid-write leaves a torn last line: start on a fresh one, so
	// the next record is not glued to it.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			if _, err := f.Write([]byte("\n")); err != nil {
				f.Close()
				return nil, fmt.Errorf("dead-letter log: repair %s: %w", path, err)
			}
		}
	}
	return &File{path: path, f: f}, nil
}

// Record appends e as one line and fsyncs.
func (l *File) Record(_ context.Context, e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("dead-letter log: encode %s: %w", e.ID, err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("dead-letter log: write %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("dead-letter log: sync %s: %w", l.path, err)
	}
	return nil
}

// List reads the file and returns up to limit entries, newest first.
// A line that does not decode (a torn write after a crash) is skipped.
func (l *File) List(_ context.Context, limit int) ([]Entry, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("dead-letter log: open %s: %w", l.path, err)
	}
	defer f.Close()
	var all []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			all = append(all, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dead-letter log: read %s: %w", l.path, err)
	}
	out := make([]Entry, 0, min(limit, len(all)))
	for i := len(all) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, all[i])
	}
	return out, nil
}

// Close closes the file.
func (l *File) Close() error { return l.f.Close() }

// Path is the file's path.
func (l *File) Path() string { return l.path }
