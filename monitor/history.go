package monitor

import (
	"errors"
	"net/http"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// history answers GET /api/v1/transactions/{transactionId}/jobs: every job
// of the escrow, oldest first, each with its flow and step, and the
// escrow's flows with their steps (flows.History).
func (m *Monitor) history(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("transactionId")
	var dl tasks.DeadLetterFinder
	if m.cfg.DeadLetters != nil {
		dl = deadletter.ForTransactionOf(m.cfg.DeadLetters)
	}
	jobs, err := m.inspector.History(r.Context(), id, dl)
	var ve *payloads.ValidationError
	switch {
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "transactionId: "+ve.Fields[0].Message, ve.Fields...)
		return
	case err != nil:
		m.inspectError(w, "history", id, err)
		return
	}
	h, err := m.flowStore().History(r.Context(), tasks.EscrowHistory{TransactionID: id, Jobs: jobs})
	if err != nil {
		m.flowError(w, "history", id, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}
