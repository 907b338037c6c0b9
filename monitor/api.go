package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// MaxProcessIn is the longest delay POST /api/v1/jobs accepts.
const MaxProcessIn = 365 * 24 * time.Hour

// maxIDLength bounds a job ID in a path; longer cannot exist (a type plus a
// dedupe key of at most 200 characters).
const maxIDLength = 300

// enqueueRequest is the body of POST /api/v1/jobs.
type enqueueRequest struct {
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	DedupeKey string          `json:"dedupeKey,omitempty"`
	// ProcessIn is a Go duration string ("10s", "1h30m") or a number of seconds.
	ProcessIn json.RawMessage `json:"processIn,omitempty"`
}

// enqueueResult is the answer of POST /api/v1/jobs.
type enqueueResult struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// apiRoutes is the /api/v1 tree (behind the bearer check).
func (m *Monitor) apiRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/jobs", methods(m.enqueue, http.MethodPost))
	mux.Handle("/api/v1/jobs/{id}", methods(m.status, http.MethodGet))
	mux.Handle("/api/v1/stats", methods(m.stats, http.MethodGet))
	m.deadLetterRoutes(mux)
	mux.Handle("/api/v1/transactions/{transactionId}/jobs", methods(m.history, http.MethodGet))
	m.flowRoutes(mux)
	m.partnerRoutes(mux)
	mux.HandleFunc("/", notFound)
	return mux
}

func (m *Monitor) enqueue(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, codeMediaType, "Content-Type must be application/json")
			return
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "read the request body: "+err.Error())
		return
	}
	req, fields := decodeEnqueue(body)
	if req == nil {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "the body must be a JSON object {type, payload, dedupeKey?, processIn?}", fields...)
		return
	}
	var opts []tasks.Option
	if req.DedupeKey != "" {
		opts = append(opts, tasks.DedupeKey(req.DedupeKey))
	}
	if d, fe := parseProcessIn(req.ProcessIn); fe != nil {
		fields = append(fields, *fe)
	} else if d > 0 {
		opts = append(opts, tasks.ProcessIn(d))
	}
	switch {
	case req.Type == "":
		fields = append([]payloads.FieldError{{Field: "type", Message: "is required"}}, fields...)
	case !knownType(req.Type):
		fields = append([]payloads.FieldError{{Field: "type", Message: "must be one of " + strings.Join(typeNames(), ", ")}}, fields...)
		msg := fmt.Sprintf("unknown job type %q", truncate(req.Type, 64))
		if strings.ContainsRune(req.Type, '@') {
			msg = "unknown job type" // it may be an address pasted in the wrong field: never echoed
		}
		writeError(w, http.StatusBadRequest, codeUnknownType, msg, fields...)
		return
	}
	if len(bytes.TrimSpace(req.Payload)) == 0 || string(bytes.TrimSpace(req.Payload)) == "null" {
		fields = append(fields, payloads.FieldError{Field: "payload", Message: "is required"})
	}
	if len(fields) > 0 {
		writeError(w, http.StatusBadRequest, codeInvalidPayload, "invalid request: "+describe(fields), fields...)
		return
	}
	task, err := tasks.FromJSON(req.Type, req.Payload, opts...)
	if err != nil {
		var ve *payloads.ValidationError
		if errors.As(err, &ve) {
			writeError(w, http.StatusBadRequest, codeInvalidPayload, ve.Error(), ve.Fields...)
			return
		}
		m.log.Error("monitor: build job", "type", req.Type, "err", payloads.MaskEmailsString(err.Error()))
		writeError(w, http.StatusInternalServerError, codeInternal, "could not build the job")
		return
	}
	id, err := m.client.Enqueue(r.Context(), task)
	switch {
	case errors.Is(err, tasks.ErrDuplicate):
		m.log.Info("monitor: duplicate enqueue refused", "job_id", id)
		writeJSON(w, http.StatusOK, enqueueResult{ID: id, Duplicate: true})
	case err != nil:
		m.log.Error("monitor: enqueue", "job_id", task.ID, "err", payloads.MaskEmailsString(err.Error()))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the job store (Redis) is unavailable; nothing was enqueued, try again")
	default:
		m.log.Info("monitor: job enqueued", "job_id", id, "type", req.Type, "queue", task.Queue)
		w.Header().Set("Location", "/api/v1/jobs/"+id)
		writeJSON(w, http.StatusCreated, enqueueResult{ID: id})
	}
}

// decodeEnqueue strictly decodes the request. A nil request means the body
// is not a usable JSON object of the right shape; fields say why.
func decodeEnqueue(body []byte) (*enqueueRequest, []payloads.FieldError) {
	var req enqueueRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return nil, []payloads.FieldError{{Field: te.Field, Message: "must be a JSON " + jsonType(te.Field)}}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return nil, []payloads.FieldError{{Field: truncate(f, 64), Message: "is not a field of the request (want type, payload, dedupeKey, processIn)"}}
		}
		return nil, []payloads.FieldError{{Field: "body", Message: "must be a JSON object"}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, []payloads.FieldError{{Field: "body", Message: "must be a single JSON object"}}
	}
	return &req, nil
}

func jsonType(field string) string {
	if field == "payload" {
		return "object"
	}
	return "string"
}

// parseProcessIn reads "10s" or 10 (seconds). Absent or null is zero.
func parseProcessIn(raw json.RawMessage) (time.Duration, *payloads.FieldError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	bad := &payloads.FieldError{Field: "processIn", Message: `must be a duration like "10s" or "1h30m", or a number of seconds`}
	var d time.Duration
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, bad
		}
		v, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, bad
		}
		d = v
	} else {
		var secs float64
		if err := json.Unmarshal(raw, &secs); err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
			return 0, bad
		}
		switch {
		case secs < 0:
			return 0, &payloads.FieldError{Field: "processIn", Message: "must not be negative"}
		case secs > MaxProcessIn.Seconds():
			return 0, &payloads.FieldError{Field: "processIn", Message: "must be at most " + MaxProcessIn.String()}
		}
		d = time.Duration(secs * float64(time.Second))
	}
	switch {
	case d < 0:
		return 0, &payloads.FieldError{Field: "processIn", Message: "must not be negative"}
	case d > MaxProcessIn:
		return 0, &payloads.FieldError{Field: "processIn", Message: "must be at most " + MaxProcessIn.String()}
	}
	return d, nil
}

func knownType(t string) bool {
	_, err := tasks.Lookup(t)
	return err == nil
}

func typeNames() []string {
	var names []string
	for _, typ := range tasks.Types() {
		names = append(names, typ.Name)
	}
	return names
}

func describe(fields []payloads.FieldError) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// jobID reads and checks the {id} of the path.
func jobID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxIDLength {
		writeError(w, http.StatusNotFound, codeNotFound, "job not found")
		return "", false
	}
	return id, true
}

func (m *Monitor) status(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	j, err := m.inspector.Status(r.Context(), id)
	if err != nil {
		m.inspectError(w, "status", id, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (m *Monitor) stats(w http.ResponseWriter, r *http.Request) {
	qs, err := m.inspector.Stats(r.Context())
	if err != nil {
		m.inspectError(w, "stats", "", err)
		return
	}
	writeJSON(w, http.StatusOK, qs)
}

// inspectError maps the Inspector's errors to answers.
func (m *Monitor) inspectError(w http.ResponseWriter, op, id string, err error) {
	switch {
	case errors.Is(err, tasks.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, fmt.Sprintf("job %s not found", truncate(id, 100)))
	default:
		m.log.Error("monitor: "+op, "job_id", payloads.MaskEmailsString(id), "err", payloads.MaskEmailsString(err.Error()))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the job store (Redis) is unavailable; try again")
	}
}
