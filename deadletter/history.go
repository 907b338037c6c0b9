package deadletter

import "context"

// Historian is a ledger that lists every entry of one job ID: the job's
// runs, each failure with its fate. File and PostgreSQL (package postgres)
// are Historians.
type Historian interface {
	// History returns every dead letter of the job, one per failed run,
	// most recent failure first, or ErrNotFound.
	History(ctx context.Context, id string) ([]Entry, error)
}

// HistoryOf returns every dead letter of job id in l, most recent failure
// first: l's History when l is a Historian, else its latest entry alone.
func HistoryOf(ctx context.Context, l Ledger, id string) ([]Entry, error) {
	if h, ok := l.(Historian); ok {
		return h.History(ctx, id)
	}
	e, err := l.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return []Entry{e}, nil
}
