package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// history prints every job of one escrow, oldest first: from Redis (the
// escrow's index and asynq) and the dead-letter ledger
// (DEAD_LETTER_DATABASE_URL or DEAD_LETTER_PATH, as the worker's). --json
// prints the API's shape (tasks.EscrowHistory).
func (c *cli) history(args []string) error {
	pos, err := c.parse(c.flags("history"), args, 1, "the transaction ID")
	if err != nil {
		return err
	}
	txID := pos[0]
	st, err := c.ledger()
	if err != nil {
		return err
	}
	defer st.Close()
	dl := deadletter.ForTransactionOf(st.Ledger)
	return inspect(c, func(ctx context.Context, in *tasks.Inspector) (tasks.EscrowHistory, error) {
		jobs, err := in.History(ctx, txID, dl)
		return tasks.EscrowHistory{TransactionID: txID, Jobs: jobs}, err
	}, writeHistory)
}

// writeHistory prints one line per job: enqueued, type, state, attempts,
// ID, last error (shortened).
func writeHistory(w io.Writer, h tasks.EscrowHistory) error {
	if len(h.Jobs) == 0 {
		_, err := fmt.Fprintf(w, "no jobs of escrow %s (completed jobs are kept for %s)\n", h.TransactionID, tasks.Retention)
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "ENQUEUED\tTYPE\tSTATE\tATTEMPTS\tID\tLAST ERROR")
	for _, j := range h.Jobs {
		state := j.State
		if j.DeadLetter != nil {
			state += " (dead letter " + j.DeadLetter.Why + " " + stamp(&j.DeadLetter.FailedAt) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", stamp(j.EnqueuedAt), j.Type, state, strconv.Itoa(j.Attempts), j.ID, truncate(cell(j.LastError), lastErrorWidth))
	}
	return tw.Flush()
}
