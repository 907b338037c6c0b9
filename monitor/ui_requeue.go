package monitor

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// uiActor is the actor recorded for the UI when it has no login (loopback
// mode).
const uiActor = "monitor-ui"

// uiReason is the reason recorded for a requeue from the UI.
const uiReason = "Run in the monitor UI"

// requeueFromUI makes asynqmon's "Run" of archived jobs (one job, a
// selection, or all of a queue) the same requeue as the API's and
// jobctl's: the full retry budget, no window where the job exists nowhere,
// and the ledger records the Basic-auth user as the actor. (asynq's own
// run keeps the spent retry budget and so gives a dead letter a single
// attempt, and tells the ledger nothing.) Other routes pass through.
func (m *Monitor) requeueFromUI(next http.Handler) http.Handler {
	prefix := RootPath + "/api/queues/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if r.Method != http.MethodPost || !ok {
			next.ServeHTTP(w, r)
			return
		}
		queue, action, ok := strings.Cut(rest, "/archived_tasks")
		if !ok || queue == "" || strings.Contains(queue, "/") {
			next.ServeHTTP(w, r)
			return
		}
		actor := uiActor
		if u, _, ok := r.BasicAuth(); ok && u != "" {
			actor = u
		}
		desk := m.deadLetterDesk()
		requeue := func(id string) error {
			_, err := desk.Requeue(r.Context(), id, actor, uiReason)
			if err != nil {
				m.log.Warn("monitor: requeue from the UI failed", "task_id", id, "actor", actor, "error", err.Error())
			} else {
				m.log.Info("monitor: dead letter requeued", "task_id", id, "actor", actor, "remote", r.RemoteAddr)
			}
			return err
		}
		switch {
		case strings.HasPrefix(action, "/") && strings.HasSuffix(action, ":run"):
			id := strings.TrimSuffix(strings.TrimPrefix(action, "/"), ":run")
			if err := requeue(id); err != nil {
				http.Error(w, err.Error(), uiStatus(err))
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case action == ":batch_run":
			var req struct {
				TaskIDs []string `json:"task_ids"`
			}
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				http.Error(w, "bad request body", http.StatusBadRequest)
				return
			}
			resp := struct {
				PendingIDs []string `json:"pending_ids"`
				ErrorIDs   []string `json:"error_ids"`
			}{PendingIDs: []string{}, ErrorIDs: []string{}}
			for _, id := range req.TaskIDs {
				if err := requeue(id); err != nil {
					resp.ErrorIDs = append(resp.ErrorIDs, id)
					continue
				}
				resp.PendingIDs = append(resp.PendingIDs, id)
			}
			writeJSON(w, http.StatusOK, resp)
		case action == ":run_all":
			b, err := desk.RequeueMatching(r.Context(), deadletter.Filter{Queue: queue}, false, actor, uiReason)
			if err != nil {
				http.Error(w, err.Error(), uiStatus(err))
				return
			}
			m.log.Info("monitor: run all from the UI", "queue", queue, "actor", actor, "requeued", b.Requeued, "failed", len(b.Failed))
			writeJSON(w, http.StatusOK, struct {
				Scheduled int `json:"scheduled"`
			}{b.Requeued})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func uiStatus(err error) int {
	switch {
	case errors.Is(err, deadletter.ErrNotFound), errors.Is(err, tasks.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, deadletter.ErrNotOpen), errors.Is(err, repair.ErrCannotRebuild):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
