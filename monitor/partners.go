package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/escrowjobs/escrowjobs/partner"
)

// partnerRoutes adds the partner routes (SPEC §10) to the API tree.
func (m *Monitor) partnerRoutes(mux *http.ServeMux) {
	mux.Handle("/api/v1/partners", methods(m.partners, http.MethodGet))
	mux.Handle("/api/v1/partners/{id}/enable", methods(m.onPartner(m.enablePartner), http.MethodPost))
	mux.Handle("/api/v1/partners/{id}/disable", methods(m.onPartner(m.disablePartner), http.MethodPost))
}

// partnerState builds the partner state and redelivery over the
// Inspector's Redis (on first use: New does not need Redis up).
func (m *Monitor) partnerState() (*partner.State, *partner.Redelivery, error) {
	st, err := partner.NewState(partner.StateConfig{Redis: m.inspector.Redis()})
	if err != nil {
		return nil, nil, err
	}
	rd, err := partner.NewRedelivery(partner.RedeliveryConfig{
		Redis: m.inspector.Redis(), State: st, Logger: m.log,
		DeadLetters: partner.LedgerDeadLetters{Desk: m.desk},
	})
	return st, rd, err
}

// partners answers GET /api/v1/partners: every partner's state, by ID.
func (m *Monitor) partners(w http.ResponseWriter, r *http.Request) {
	st, _, err := m.partnerState()
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeInternal, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	list, err := st.Statuses(ctx)
	if err != nil {
		m.log.Error("monitor: partners", "err", err.Error())
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the job store (Redis) is unavailable; try again")
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// partnerResult is the answer of the enable and disable routes.
type partnerResult struct {
	partner.Status
	// Redelivered is how many dead letters enable scheduled for delivery.
	Redelivered int `json:"redelivered"`
}

// partnerID reads and checks {id}; a partner no worker knows and with no
// state is 404.
func (m *Monitor) partnerID(w http.ResponseWriter, r *http.Request, st *partner.State) (string, bool) {
	id := r.PathValue("id")
	if !partner.ValidPartnerID(id) {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "partner id: want 1-64 letters, digits, '-', '_' or '.'")
		return "", false
	}
	list, err := st.Statuses(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the job store (Redis) is unavailable; try again")
		return "", false
	}
	for _, s := range list {
		if s.ID == id {
			return id, true
		}
	}
	if s, err := st.Status(r.Context(), id); err == nil && (s.State != partner.StateHealthy || s.Waiting > 0) {
		return id, true
	}
	writeError(w, http.StatusNotFound, codeNotFound, fmt.Sprintf("partner %s not found in the registry", id))
	return "", false
}

// onPartner is the handler of a route on partner {id}: it builds the
// partner state, checks the ID (partnerID) and calls h with them.
func (m *Monitor) onPartner(h func(w http.ResponseWriter, r *http.Request, id string, st *partner.State, rd *partner.Redelivery)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st, rd, err := m.partnerState()
		if err != nil {
			writeError(w, http.StatusInternalServerError, codeInternal, err.Error())
			return
		}
		if id, ok := m.partnerID(w, r, st); ok {
			h(w, r, id, st, rd)
		}
	}
}

// enablePartner answers POST /api/v1/partners/{id}/enable: the partner is
// turned back on and its waiting dead letters redelivered.
func (m *Monitor) enablePartner(w http.ResponseWriter, r *http.Request, id string, st *partner.State, rd *partner.Redelivery) {
	n, err := rd.Enable(r.Context(), id, "api")
	if err != nil {
		m.log.Error("monitor: enable partner", "partner", id, "err", err.Error())
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the job store (Redis) is unavailable; try again")
		return
	}
	m.log.Info("monitor: partner enabled", "partner", id, "redelivered", n, "actor", "api", "remote", r.RemoteAddr)
	s, _ := st.Status(r.Context(), id)
	writeJSON(w, http.StatusOK, partnerResult{Status: s, Redelivered: n})
}

// disablePartner answers POST /api/v1/partners/{id}/disable {reason?}:
// deliveries to the partner become dead letters until it is enabled.
func (m *Monitor) disablePartner(w http.ResponseWriter, r *http.Request, id string, st *partner.State, _ *partner.Redelivery) {
	var body struct {
		Reason string `json:"reason"`
	}
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			writeError(w, http.StatusBadRequest, codeInvalidRequest, `the body must be empty or {"reason": "…"}`)
			return
		}
	}
	reason := "disabled through the API"
	if body.Reason != "" {
		reason = truncate(body.Reason, 200)
	}
	if err := st.Disable(r.Context(), id, reason); err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the job store (Redis) is unavailable; try again")
		return
	}
	m.log.Info("monitor: partner disabled", "partner", id, "actor", "api", "remote", r.RemoteAddr)
	s, _ := st.Status(r.Context(), id)
	writeJSON(w, http.StatusOK, partnerResult{Status: s})
}
