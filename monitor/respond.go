package monitor

import (
	"encoding/json"
	"net/http"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Error codes of the JSON error shape.
const (
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeInvalidRequest   = "invalid_request"
	codeInvalidPayload   = "invalid_payload"
	codeUnknownType      = "unknown_type"
	codeTooLarge         = "payload_too_large"
	codeMediaType        = "unsupported_media_type"
	codeNotOpen          = "not_open"
	codeCannotRebuild    = "cannot_rebuild"
	codeStillActive      = "still_active"
	codeConflict         = "conflict"
	codeReadOnly         = "read_only"
	codeUnavailable      = "unavailable"
	codeTooManyRequests  = "too_many_requests"
	codeInternal         = "internal"
)

// apiError is the body of every error answer: {"error": {...}}.
type apiError struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string                `json:"code"`
	Message string                `json:"message"`
	Fields  []payloads.FieldError `json:"fields,omitempty"`
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encode the answer"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers status with the stable error shape. The message and
// the field names are masked (tasks.RedactText: addresses, a URL's
// password and query): they may echo what a caller typed (an ID, an
// unknown field's name) or an error of Redis or the ledger.
func writeError(w http.ResponseWriter, status int, code, msg string, fields ...payloads.FieldError) {
	masked := make([]payloads.FieldError, len(fields))
	for i, f := range fields {
		masked[i] = payloads.FieldError{Field: tasks.RedactText(f.Field), Message: tasks.RedactText(f.Message)}
	}
	writeJSON(w, status, apiError{Error: errorBody{Code: code, Message: tasks.RedactText(msg), Fields: masked}})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, codeNotFound, "no route for "+r.Method+" "+maskPath(r.URL))
}

// methods admits only the given methods to h; others get a JSON 405.
func methods(h http.HandlerFunc, allowed ...string) http.Handler {
	allow := ""
	for i, m := range allowed {
		if i > 0 {
			allow += ", "
		}
		allow += m
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range allowed {
			if r.Method == m {
				h(w, r)
				return
			}
		}
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, r.Method+" is not allowed here; use "+allow)
	})
}
