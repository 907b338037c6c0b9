// Package jsonl is an append-only JSON-lines file that the processes of
// one host share, as the audit sink (package audit) and the dead-letter
// ledger (package deadletter) do: each process, holding an exclusive flock,
// reads the lines the others appended since it last looked, then appends
// its own, fsynced.
//
// A line cut short by a crash (a torn last line) stays, since the file is
// only appended to; the next line appended starts on a new line.
package jsonl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNoLock is returned by Lock where flock is not available.
var ErrNoLock = errors.New("file locking is not supported on this system")

// File is the reading and appending end of one file. It is not safe for
// concurrent use: its owner serializes the calls, and holds the lock
// around each ReadNew and the Append that follows it.
type File struct {
	path string
	f    *os.File
	// offset is how far the file has been read; past it are lines other
	// writers appended.
	offset int64
	// torn is set when the file does not end in a newline (a writer died
	// mid-line).
	torn bool
}

// Open opens (creating if needed, mode 0600) the file at path.
func Open(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &File{path: path, f: f}, nil
}

// Lock takes the exclusive lock on the file itself; see the function Lock.
func (l *File) Lock() (unlock func(), err error) { return Lock(l.f) }

// ReadNew calls fn with each line appended since the last ReadNew (by this
// File or another writer), without its newline. Call it holding the lock,
// so that no writer is mid-line: a last line without its newline is then
// torn for good. It is passed to fn too (it may be a whole record whose
// newline was lost), and the next Append starts a new line. A file that
// has shrunk is an error: it must only be appended to.
func (l *File) ReadNew(fn func(line []byte)) error {
	st, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", l.path, err)
	}
	size := st.Size()
	if size < l.offset {
		return fmt.Errorf("%s shrank from %d to %d bytes; it must only be appended to", l.path, l.offset, size)
	}
	if size == l.offset {
		return nil
	}
	r := bufio.NewReaderSize(io.NewSectionReader(l.f, l.offset, size-l.offset), 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			l.torn = line[len(line)-1] != '\n'
			fn(bytes.TrimSuffix(line, []byte{'\n'}))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", l.path, err)
		}
	}
	l.offset = size
	return nil
}

// Append writes line and a newline (after a newline that ends a torn last
// line) and fsyncs. Call it holding the lock, right after ReadNew. When
// the write fails part-way, the bytes written count as read and end a torn
// line. When the fsync fails the line counts as read although it may never
// reach the disk: its writer must not take it as stored, so that a retry
// appends it again (a duplicate line rather than a lost one).
func (l *File) Append(line []byte) error {
	b := make([]byte, 0, len(line)+2)
	if l.torn {
		b = append(b, '\n')
	}
	b = append(append(b, line...), '\n')
	n, err := l.f.Write(b)
	l.offset += int64(n) // O_APPEND under the lock: the bytes went to l.offset
	if err != nil {
		l.torn = n > 0 && b[n-1] != '\n' || l.torn && n == 0
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	l.torn = false
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", l.path, err)
	}
	return nil
}

// Empty truncates the file to nothing, for an owner whose lines have all
// become obsolete (a file of one process's pending records). Call it
// holding the lock; another File open on the path then finds it shrunk.
func (l *File) Empty() error {
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("empty %s: %w", l.path, err)
	}
	l.offset, l.torn = 0, false
	return nil
}

// Replaced reports whether the path now names another file than the one
// open: one renamed over it, as a compaction does.
func (l *File) Replaced() bool {
	st, err := os.Stat(l.path)
	if err != nil {
		return false
	}
	cur, err := l.f.Stat()
	return err == nil && !os.SameFile(st, cur)
}

// Close closes the file.
func (l *File) Close() error { return l.f.Close() }
