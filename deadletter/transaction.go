package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
)

// MaxScan is how many of the newest entries Scan reads to find one
// escrow's dead letters.
const MaxScan = 100_000

// Lister is a dead-letter log that lists its newest entries (File, the
// PostgreSQL log).
type Lister interface {
	List(ctx context.Context, limit int) ([]Entry, error)
}

// Scan finds the dead letters of one escrow by reading the newest MaxScan
// entries of a log and keeping those whose payload's transactionId
// matches. It serves tasks.Inspector.History until the log can filter by
// transactionId itself (a ledger with an index implements the same
// ForTransaction method directly).
type Scan struct{ log Lister }

// ScanForTransaction returns the Scan of l.
func ScanForTransaction(l Lister) Scan { return Scan{log: l} }

// ForTransaction returns the entries of transactionID, newest first.
func (s Scan) ForTransaction(ctx context.Context, transactionID string) ([]Entry, error) {
	all, err := s.log.List(ctx, MaxScan)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range all {
		var p struct {
			TransactionID string `json:"transactionId"`
		}
		if json.Unmarshal(e.Payload, &p) == nil && p.TransactionID == transactionID {
			out = append(out, e)
		}
	}
	return out, nil
}

// FileReader reads the dead-letter file at path without opening it for
// writing (the monitor and jobctl, next to the worker that writes it). A
// missing file lists nothing.
func FileReader(path string) Lister { return fileReader{path} }

type fileReader struct{ path string }

func (r fileReader) List(ctx context.Context, limit int) ([]Entry, error) {
	if _, err := os.Stat(r.path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return (&File{path: r.path}).List(ctx, limit)
}
