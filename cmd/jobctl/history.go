package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// history prints every job of one escrow, oldest first, grouped under the
// flow it belongs to: from Redis (the escrow's index, asynq and the flows)
// and the dead-letter ledger (DEAD_LETTER_DATABASE_URL or
// DEAD_LETTER_PATH, as the worker's). --json prints the API's shape
// (flows.History: the jobs with their flow and step, and the flows).
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
	return inspect(c, func(ctx context.Context, in *tasks.Inspector) (flows.History, error) {
		jobs, err := in.History(ctx, txID, dl)
		if err != nil {
			return flows.History{}, err
		}
		return flowStore(in).History(ctx, tasks.EscrowHistory{TransactionID: txID, Jobs: jobs})
	}, writeHistory)
}

// writeHistory prints, for each flow of the escrow (oldest first), a line
// with its state and failed step, then its steps in dependency order with
// the job of each (a step not enqueued shows the flow's state of it:
// waiting, blocked, cancelled); then the jobs of no flow, one line each:
// enqueued, type, state, attempts, ID, last error (shortened).
func writeHistory(w io.Writer, h flows.History) error {
	if len(h.Jobs) == 0 && len(h.Flows) == 0 {
		_, err := fmt.Fprintf(w, "no jobs of escrow %s (completed jobs are kept for %s)\n", h.TransactionID, tasks.Retention)
		return err
	}
	byID := map[string]flows.HistoryJob{}
	var other []flows.HistoryJob
	orphans := map[string][]flows.HistoryJob{} // flow → jobs of a flow not found (expired)
	var orphanFlows []string
	known := map[string]bool{}
	for _, v := range h.Flows {
		known[v.ID] = true
	}
	for _, j := range h.Jobs {
		switch {
		case j.Flow == "":
			other = append(other, j)
		case known[j.Flow]:
			byID[j.ID] = j
		default:
			if orphans[j.Flow] == nil {
				orphanFlows = append(orphanFlows, j.Flow)
			}
			orphans[j.Flow] = append(orphans[j.Flow], j)
		}
	}
	for i, v := range h.Flows {
		if i > 0 {
			fmt.Fprintln(w)
		}
		head := fmt.Sprintf("flow %s: %s, %s", v.ID, v.State, stepCounts(v))
		if step, lastErr := v.FailedStep(); step != "" {
			head += fmt.Sprintf("; failed step %s: %s", step, truncate(cell(lastErr), lastErrorWidth))
		}
		fmt.Fprintln(w, head)
		tw := table(w)
		fmt.Fprintln(tw, "  ENQUEUED\tSTEP\tTYPE\tSTATE\tATTEMPTS\tID\tLAST ERROR")
		for _, s := range dependencyOrder(v.Steps) {
			name := s.Name
			if s.OnFailure {
				name += " (on failure)"
			}
			j, ok := byID[s.JobID]
			if !ok {
				fmt.Fprintf(tw, "  -\t%s\t%s\t%s (not enqueued)\t%d\t%s\t%s\n", name, s.Type, s.State, s.Attempts, s.JobID, truncate(cell(s.LastError), lastErrorWidth))
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", stamp(j.EnqueuedAt), name, j.Type, jobState(j), strconv.Itoa(j.Attempts), j.ID, truncate(cell(j.LastError), lastErrorWidth))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, f := range orphanFlows {
		fmt.Fprintf(w, "\nflow %s: no longer kept (its jobs only)\n", f)
		tw := table(w)
		fmt.Fprintln(tw, "  ENQUEUED\tSTEP\tTYPE\tSTATE\tATTEMPTS\tID\tLAST ERROR")
		for _, j := range orphans[f] {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", stamp(j.EnqueuedAt), j.Step, j.Type, jobState(j), strconv.Itoa(j.Attempts), j.ID, truncate(cell(j.LastError), lastErrorWidth))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(other) == 0 {
		return nil
	}
	if len(h.Flows) > 0 || len(orphanFlows) > 0 {
		fmt.Fprintln(w, "\njobs of no flow")
	}
	tw := table(w)
	fmt.Fprintln(tw, "ENQUEUED\tTYPE\tSTATE\tATTEMPTS\tID\tLAST ERROR")
	for _, j := range other {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", stamp(j.EnqueuedAt), j.Type, jobState(j), strconv.Itoa(j.Attempts), j.ID, truncate(cell(j.LastError), lastErrorWidth))
	}
	return tw.Flush()
}

// jobState is a job's state, with its dead letter's reason and time.
func jobState(j flows.HistoryJob) string {
	if j.DeadLetter != nil {
		return j.State + " (dead letter " + j.DeadLetter.Why + " " + stamp(&j.DeadLetter.FailedAt) + ")"
	}
	return j.State
}
