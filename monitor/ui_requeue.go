package monitor

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// requeueFromUI makes asynqmon's "Run" of archived jobs (one job, a
// selection, or all of a queue) a full requeue: asynq's own run keeps the
// spent retry budget and so gives a dead letter a single attempt, while the
// API and jobctl give it one attempt plus three retries. The UI now does
// the same. Other routes pass through.
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
		switch {
		case strings.HasPrefix(action, "/") && strings.HasSuffix(action, ":run"):
			id := strings.TrimSuffix(strings.TrimPrefix(action, "/"), ":run")
			if _, err := m.inspector.Requeue(r.Context(), id); err != nil {
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
				if _, err := m.inspector.Requeue(r.Context(), id); err != nil {
					m.log.Warn("monitor: requeue from the UI failed", "task_id", id, "error", err)
					resp.ErrorIDs = append(resp.ErrorIDs, id)
					continue
				}
				resp.PendingIDs = append(resp.PendingIDs, id)
			}
			writeJSON(w, http.StatusOK, resp)
		case action == ":run_all":
			n := 0
			for {
				ts, err := m.inspector.Asynq().ListArchivedTasks(queue, asynq.PageSize(100))
				if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				requeued := 0
				for _, t := range ts {
					if _, err := m.inspector.Requeue(r.Context(), t.ID); err == nil {
						requeued++
					}
				}
				n += requeued
				if len(ts) < 100 || requeued == 0 {
					break
				}
			}
			writeJSON(w, http.StatusOK, struct {
				Scheduled int `json:"scheduled"`
			}{n})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func uiStatus(err error) int {
	switch {
	case errors.Is(err, tasks.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, tasks.ErrNotArchived):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
