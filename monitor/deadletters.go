package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// MaxDeadLetters is the largest limit of GET /api/v1/dead-letters.
const MaxDeadLetters = 1000

// apiActor is the actor the ledger records for a repair through the API.
const apiActor = "api"

// maxReasonLength bounds the reason of a requeue or discard.
const maxReasonLength = 500

// DeadLetterList is the answer of GET /api/v1/dead-letters: entries with
// masked payloads, most recent failure first, and the cursor of the next
// page (null on the last).
type DeadLetterList struct {
	Items []deadletter.Entry `json:"items"`
	Next  *string            `json:"next"`
}

// BulkRequest is the body of POST /api/v1/dead-letters/requeue.
type BulkRequest struct {
	Filter BulkFilter `json:"filter"`
	DryRun bool       `json:"dryRun,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

// BulkFilter selects the open dead letters a bulk requeue takes. Since and
// Until are RFC 3339 times, or durations back from now ("2h").
type BulkFilter struct {
	Type          string `json:"type,omitempty"`
	Queue         string `json:"queue,omitempty"`
	PartnerID     string `json:"partnerId,omitempty"`
	TransactionID string `json:"transactionId,omitempty"`
	Since         string `json:"since,omitempty"`
	Until         string `json:"until,omitempty"`
}

func (m *Monitor) deadLetterRoutes(mux *http.ServeMux) {
	mux.Handle("/api/v1/dead-letters", methods(m.deadLetters, http.MethodGet))
	mux.Handle("/api/v1/dead-letters/requeue", methods(m.bulkRequeue, http.MethodPost))
	mux.Handle("/api/v1/dead-letters/{id}", methods(m.deadLetter, http.MethodGet))
	mux.Handle("/api/v1/dead-letters/{id}/requeue", methods(m.resolveDeadLetter("requeue", m.deadLetterDesk().Requeue), http.MethodPost))
	mux.Handle("/api/v1/dead-letters/{id}/discard", methods(m.resolveDeadLetter("discard", m.deadLetterDesk().Discard), http.MethodPost))
}

// filterFrom reads the filter fields of a query (or a bulk filter).
func filterFrom(get func(string) string) (deadletter.Filter, []payloads.FieldError) {
	f := deadletter.Filter{
		Type: get("type"), Queue: get("queue"), TransactionID: get("transactionId"), PartnerID: get("partnerId"), State: get("state"),
	}
	var bad []payloads.FieldError
	switch f.State {
	case "", deadletter.StateOpen, deadletter.StateRequeued, deadletter.StateDiscarded:
	default:
		bad = append(bad, payloads.FieldError{Field: "state", Message: "must be open, requeued or discarded"})
	}
	if f.Type != "" && !knownType(f.Type) {
		bad = append(bad, payloads.FieldError{Field: "type", Message: "must be one of " + strings.Join(typeNames(), ", ")})
	}
	for _, tf := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := get(tf.name); v != "" {
			t, err := deadletter.ParseTime(v, time.Now())
			if err != nil {
				bad = append(bad, payloads.FieldError{Field: tf.name, Message: err.Error()})
				continue
			}
			*tf.dst = t
		}
	}
	if len(bad) == 0 {
		if err := f.Validate(); err != nil {
			bad = append(bad, payloads.FieldError{Field: "until", Message: err.Error()})
		}
	}
	return f, bad
}

func (m *Monitor) deadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	var bad []payloads.FieldError
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxDeadLetters {
			bad = append(bad, payloads.FieldError{Field: "limit", Message: fmt.Sprintf("must be a whole number from 1 to %d", MaxDeadLetters)})
		}
		limit = n
	}
	f, fbad := filterFrom(q.Get)
	bad = append(bad, fbad...)
	for k := range q {
		switch k {
		case "limit", "cursor", "type", "queue", "transactionId", "partnerId", "state", "since", "until":
		default:
			bad = append(bad, payloads.FieldError{Field: truncate(k, 64), Message: "is not a filter (want limit, cursor, type, queue, transactionId, partnerId, state, since, until)"})
		}
	}
	if len(bad) > 0 {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, describe(bad), bad...)
		return
	}
	page, err := m.deadLetterDesk().List(r.Context(), f, q.Get("cursor"), limit)
	if err != nil {
		m.deadLetterError(w, "list dead letters", "", err)
		return
	}
	writeJSON(w, http.StatusOK, listAnswer(page))
}

func listAnswer(p deadletter.Page) DeadLetterList {
	out := DeadLetterList{Items: make([]deadletter.Entry, len(p.Entries))}
	for i, e := range p.Entries {
		out.Items[i] = e.Masked()
	}
	if p.Next != "" {
		out.Next = &p.Next
	}
	return out
}

func (m *Monitor) deadLetter(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	e, err := m.deadLetterDesk().Get(r.Context(), id)
	if err != nil {
		m.deadLetterError(w, "dead letter", id, err)
		return
	}
	writeJSON(w, http.StatusOK, DeadLetterAnswer{Entry: e.Masked(), WaitingBehind: m.waitingBehind(r.Context(), e)})
}

// DeadLetterAnswer is the answer of GET /api/v1/dead-letters/{id}: the
// ledger's entry, and for the open dead letter of an event to an
// "ordered" partner, how many later events of its escrow wait for it.
type DeadLetterAnswer struct {
	deadletter.Entry
	WaitingBehind int `json:"waitingBehind,omitempty"`
}

// waitingBehind counts the later events of the escrow that wait for the
// open dead letter e (0 when it is resolved, of another kind, or Redis
// does not answer: the count is an aid, not the answer).
func (m *Monitor) waitingBehind(ctx context.Context, e deadletter.Entry) int {
	if e.State != deadletter.StateOpen {
		return 0
	}
	st, _, err := m.partnerState()
	if err != nil {
		return 0
	}
	n, err := st.WaitingBehind(ctx, e.ID, e.Type, e.Payload)
	if err != nil {
		m.log.Warn("monitor: events waiting behind a dead letter", "task_id", e.ID, "err", err.Error())
	}
	return n
}

// decodeBody strictly decodes an optional JSON body into v.
func decodeBody(r *http.Request, v any) *payloads.FieldError {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return &payloads.FieldError{Field: "body", Message: "could not be read: " + err.Error()}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return &payloads.FieldError{Field: te.Field, Message: "has the wrong JSON type"}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &payloads.FieldError{Field: truncate(f, 64), Message: "is not a field of the request"}
		}
		return &payloads.FieldError{Field: "body", Message: "must be a JSON object"}
	}
	return nil
}

// reasonFrom reads {reason} of a requeue or discard.
func reasonFrom(w http.ResponseWriter, r *http.Request) (string, bool) {
	var req struct {
		Reason string `json:"reason"`
	}
	if fe := decodeBody(r, &req); fe != nil {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, describe([]payloads.FieldError{*fe}), *fe)
		return "", false
	}
	if len(req.Reason) > maxReasonLength || strings.ContainsAny(req.Reason, "\r\n") {
		fe := payloads.FieldError{Field: "reason", Message: fmt.Sprintf("must be one line of at most %d characters", maxReasonLength)}
		writeError(w, http.StatusBadRequest, codeInvalidRequest, describe([]payloads.FieldError{fe}), fe)
		return "", false
	}
	return strings.TrimSpace(req.Reason), true
}

// resolveDeadLetter answers POST /api/v1/dead-letters/{id}/<action>
// {reason}: do resolves the dead letter (requeue or discard) as actor "api".
func (m *Monitor) resolveDeadLetter(action string, do func(ctx context.Context, id, actor, reason string) (deadletter.Entry, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := jobID(w, r)
		if !ok {
			return
		}
		reason, ok := reasonFrom(w, r)
		if !ok {
			return
		}
		e, err := do(r.Context(), id, apiActor, reason)
		if err != nil {
			m.deadLetterError(w, action, id, err)
			return
		}
		m.log.Info("monitor: dead letter "+e.State, "task_id", id, "actor", apiActor, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, e.Masked())
	}
}

func (m *Monitor) bulkRequeue(w http.ResponseWriter, r *http.Request) {
	var req BulkRequest
	if fe := decodeBody(r, &req); fe != nil {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, describe([]payloads.FieldError{*fe}), *fe)
		return
	}
	vals := url.Values{}
	for k, v := range map[string]string{"type": req.Filter.Type, "queue": req.Filter.Queue, "partnerId": req.Filter.PartnerID,
		"transactionId": req.Filter.TransactionID, "since": req.Filter.Since, "until": req.Filter.Until} {
		if v != "" {
			vals.Set(k, v)
		}
	}
	f, bad := filterFrom(vals.Get)
	for i := range bad {
		bad[i].Field = "filter." + bad[i].Field
	}
	if len(bad) > 0 {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, describe(bad), bad...)
		return
	}
	b, err := m.deadLetterDesk().RequeueMatching(r.Context(), f, req.DryRun, apiActor, strings.TrimSpace(req.Reason))
	if err != nil {
		m.deadLetterError(w, "bulk requeue", "", err)
		return
	}
	m.log.Info("monitor: bulk requeue", "dry_run", req.DryRun, "matched", b.Matched, "requeued", b.Requeued, "failed", len(b.Failed), "remote", r.RemoteAddr)
	for id, why := range b.Failed {
		b.Failed[id] = tasks.RedactText(why)
	}
	writeJSON(w, http.StatusOK, b)
}

// deadLetterError maps the ledger's and the desk's errors to answers.
func (m *Monitor) deadLetterError(w http.ResponseWriter, op, id string, err error) {
	switch {
	case errors.Is(err, errNoLedger):
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, err.Error())
	case errors.Is(err, deadletter.ErrNotFound), errors.Is(err, tasks.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, fmt.Sprintf("no dead letter of job %s", truncate(id, 100)))
	case errors.Is(err, deadletter.ErrNotOpen):
		writeError(w, http.StatusConflict, codeNotOpen, err.Error())
	case errors.Is(err, repair.ErrCannotRebuild):
		writeError(w, http.StatusConflict, codeCannotRebuild, err.Error())
	case errors.Is(err, repair.ErrStillActive):
		writeError(w, http.StatusConflict, codeStillActive, err.Error())
	case errors.Is(err, repair.ErrConflict):
		writeError(w, http.StatusConflict, codeConflict, err.Error())
	case errors.Is(err, deadletter.ErrBadCursor):
		fe := payloads.FieldError{Field: "cursor", Message: "is not a cursor this API handed out"}
		writeError(w, http.StatusBadRequest, codeInvalidRequest, describe([]payloads.FieldError{fe}), fe)
	case errors.Is(err, repair.ErrReasonRequired):
		fe := payloads.FieldError{Field: "reason", Message: "is required"}
		writeError(w, http.StatusBadRequest, codeInvalidRequest, describe([]payloads.FieldError{fe}), fe)
	default:
		m.log.Error("monitor: "+op, "task_id", payloads.MaskEmailsString(id), "err", tasks.RedactText(err.Error()))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the job store (Redis) or the dead-letter ledger is unavailable; nothing was lost, try again: "+err.Error())
	}
}

// errNoLedger is returned by the dead-letter routes of a monitor built
// without Config.DeadLetters.
var errNoLedger = errors.New("no dead-letter ledger configured (DEAD_LETTER_DATABASE_URL or DEAD_LETTER_PATH)")

// noLedger stands in for a missing Config.DeadLetters.
type noLedger struct{}

func (noLedger) Record(context.Context, deadletter.Entry) (bool, error) { return false, errNoLedger }
func (noLedger) List(context.Context, deadletter.Filter, string, int) (deadletter.Page, error) {
	return deadletter.Page{}, errNoLedger
}
func (noLedger) Get(context.Context, string) (deadletter.Entry, error) {
	return deadletter.Entry{}, errNoLedger
}
func (noLedger) MarkRequeued(context.Context, string, deadletter.Resolution) (int, error) {
	return 0, errNoLedger
}
func (noLedger) MarkDiscarded(context.Context, string, deadletter.Resolution) (int, error) {
	return 0, errNoLedger
}
func (noLedger) Purge(context.Context, time.Time) (int, error) { return 0, errNoLedger }

func (m *Monitor) deadLetterDesk() *repair.Desk { return m.desk }
