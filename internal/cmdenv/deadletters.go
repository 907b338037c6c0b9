package cmdenv

import (
	"context"
	"fmt"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/postgres"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// DeadLetterFinder is the durable dead-letter log the worker writes, read
// for an escrow's history: DEAD_LETTER_DATABASE_URL (or
// AUDIT_DATABASE_URL), else the file DEAD_LETTER_PATH (default
// dead-letters.jsonl, as the worker's; a missing file lists nothing).
// Call close when done.
func DeadLetterFinder(ctx context.Context, getenv func(string) string) (f tasks.DeadLetterFinder, close func(), err error) {
	if url := Or(getenv("DEAD_LETTER_DATABASE_URL"), getenv("AUDIT_DATABASE_URL")); url != "" {
		db, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, nil, fmt.Errorf("DEAD_LETTER_DATABASE_URL: %w", err)
		}
		return deadletter.ScanForTransaction(db.DeadLetters()), db.Close, nil
	}
	return deadletter.ScanForTransaction(deadletter.FileReader(Or(getenv("DEAD_LETTER_PATH"), "dead-letters.jsonl"))), func() {}, nil
}
