package monitor

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
)

// maxFlowNameLength bounds the name filter of GET /api/v1/flows.
const maxFlowNameLength = 100

// FlowList is the answer of GET /api/v1/flows: the flows (flows.View),
// most recently created first, and the cursor of the next page (null on
// the last).
type FlowList struct {
	Items []flows.View `json:"items"`
	Next  *string      `json:"next"`
}

// flowRoutes are GET /api/v1/flows/{id} (one flow with its steps) and GET
// /api/v1/flows?state=&name=&cursor=&limit= (a page of flows).
func (m *Monitor) flowRoutes(mux *http.ServeMux) {
	store := m.flowStore()
	mux.Handle("/api/v1/flows", methods(func(w http.ResponseWriter, r *http.Request) { m.flowList(w, r, store) }, http.MethodGet))
	mux.Handle("/api/v1/flows/{id}", methods(func(w http.ResponseWriter, r *http.Request) { m.flowStatus(w, r, store) }, http.MethodGet))
}

// flowStore reads the flows on the monitor's Redis, with asynq's view of
// their steps' jobs.
func (m *Monitor) flowStore() *flows.Store {
	return flows.NewStore(m.inspector.Redis(), m.inspector, flows.Logger(m.log))
}

func (m *Monitor) flowStatus(w http.ResponseWriter, r *http.Request, store *flows.Store) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxIDLength {
		writeError(w, http.StatusNotFound, codeNotFound, "flow not found")
		return
	}
	v, err := store.Status(r.Context(), id)
	switch {
	case errors.Is(err, flows.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, fmt.Sprintf("flow %s not found", truncate(id, 100)))
	case err != nil:
		m.flowError(w, "flow", id, err)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func (m *Monitor) flowList(w http.ResponseWriter, r *http.Request, store *flows.Store) {
	q := r.URL.Query()
	var bad []payloads.FieldError
	limit := 50
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > flows.MaxListLimit {
			bad = append(bad, payloads.FieldError{Field: "limit", Message: fmt.Sprintf("must be a whole number from 1 to %d", flows.MaxListLimit)})
		}
		limit = n
	}
	f := flows.Filter{State: q.Get("state"), Name: q.Get("name")}
	switch f.State {
	case "", flows.StateRunning, flows.StateCompleted, flows.StateFailed, flows.StateCancelled:
	default:
		bad = append(bad, payloads.FieldError{Field: "state", Message: "must be running, completed, failed or cancelled"})
	}
	if len(f.Name) > maxFlowNameLength {
		bad = append(bad, payloads.FieldError{Field: "name", Message: fmt.Sprintf("must be at most %d characters", maxFlowNameLength)})
	}
	for k := range q {
		switch k {
		case "state", "name", "cursor", "limit":
		default:
			bad = append(bad, payloads.FieldError{Field: truncate(k, 64), Message: "is not a filter (want state, name, cursor, limit)"})
		}
	}
	if len(bad) > 0 {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, describe(bad), bad...)
		return
	}
	page, err := store.List(r.Context(), f, q.Get("cursor"), limit)
	switch {
	case errors.Is(err, flows.ErrBadCursor):
		fe := payloads.FieldError{Field: "cursor", Message: "is not a cursor of this list (use the next of the previous page)"}
		writeError(w, http.StatusBadRequest, codeInvalidRequest, describe([]payloads.FieldError{fe}), fe)
		return
	case err != nil:
		m.flowError(w, "list flows", "", err)
		return
	}
	out := FlowList{Items: page.Items}
	if out.Items == nil {
		out.Items = []flows.View{}
	}
	if page.Next != "" {
		out.Next = &page.Next
	}
	writeJSON(w, http.StatusOK, out)
}

// flowError answers a failure to read flows: Redis did not answer.
func (m *Monitor) flowError(w http.ResponseWriter, op, id string, err error) {
	m.log.Error("monitor: "+op, "flow_id", payloads.MaskEmailsString(id), "err", payloads.MaskEmailsString(err.Error()))
	writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the job store (Redis) is unavailable; try again")
}
