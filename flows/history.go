package flows

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/escrowjobs/escrowjobs/tasks"
)

// EscrowNames are the names of the escrow flows (one per transition,
// keyed by the escrow ID: release:esc-123). History looks for each of
// them.
func EscrowNames() []string { return []string{"fund", "release", "refund", "dispute", "resolve"} }

// History is one escrow's story with its flows: the JSON answer of GET
// /api/v1/transactions/{transactionId}/jobs and of jobctl history --json.
type History struct {
	TransactionID string       `json:"transactionId"`
	Jobs          []HistoryJob `json:"jobs"`
	// Flows are the escrow's flows with their steps, oldest first.
	Flows []View `json:"flows"`
}

// HistoryJob is a job of an escrow's history (tasks.HistoryJob) with the
// flow and step it belongs to; both are omitted for a job of no flow.
type HistoryJob struct {
	tasks.HistoryJob
	Flow string `json:"flow,omitempty"`
	Step string `json:"step,omitempty"`
}

// History adds the flows to h, an escrow's jobs (tasks.Inspector.History).
// A job's flow and step come from its headers (Of) while asynq holds it,
// else from its dead letter's record, else from a flow found that lists
// the job's ID as a step's (a completed job asynq dropped). The escrow's
// flows are those its jobs name and those named EscrowNames keyed by the
// transaction ID (found even when asynq holds none of their jobs any
// more); flows expired after the retention are not shown.
func (s *Store) History(ctx context.Context, h tasks.EscrowHistory) (History, error) {
	out := History{TransactionID: h.TransactionID, Jobs: make([]HistoryJob, len(h.Jobs)), Flows: []View{}}
	ids := []string{}
	seen := map[string]bool{}
	want := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for i, j := range h.Jobs {
		out.Jobs[i] = HistoryJob{HistoryJob: j}
		flow, step, ok := Of(j.Headers)
		if !ok && j.DeadLetter != nil && j.DeadLetter.Flow != "" {
			flow, step = j.DeadLetter.Flow, j.DeadLetter.Step
		}
		out.Jobs[i].Flow, out.Jobs[i].Step = flow, step
		want(flow)
	}
	for _, name := range EscrowNames() {
		want(ID(name, h.TransactionID))
	}
	stepOf := map[string][2]string{} // job ID → flow, step
	for _, id := range ids {
		v, err := s.Status(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return History{}, fmt.Errorf("history of %s: %w", h.TransactionID, err)
		}
		out.Flows = append(out.Flows, v)
		for _, st := range v.Steps {
			stepOf[st.JobID] = [2]string{v.ID, st.Name}
		}
	}
	slices.SortStableFunc(out.Flows, func(a, b View) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	for i, j := range out.Jobs {
		if j.Flow == "" {
			if fs, ok := stepOf[j.ID]; ok {
				out.Jobs[i].Flow, out.Jobs[i].Step = fs[0], fs[1]
			}
		}
	}
	return out, nil
}
