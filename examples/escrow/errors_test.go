package main

import (
	"net/http"
	"strings"
	"testing"
)

// Every error is JSON with the status that says what went wrong: a body
// over the limit is 413, an amount that is not an integer says it must be
// minor units, a method the route does not take is 405.
func TestErrorsAreJSONWithTheirStatus(t *testing.T) {
	a := newAPI(t)
	huge := `{"id":"` + strings.Repeat("x", maxBody) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		wantCode                 int
		wantError                string // in "error"
		wantField, wantMessage   string // the first field error, if any
	}{
		{"body over the limit", "POST", "/escrows", huge, http.StatusRequestEntityTooLarge, "over 65536 bytes", "", ""},
		{"body over the limit on a transition", "POST", "/escrows/esc-1/refund", `{"reason":"` + strings.Repeat("x", maxBody) + `"}`, http.StatusRequestEntityTooLarge, "over 65536 bytes", "", ""},
		{"fractional amount", "POST", "/escrows", strings.Replace(goodBody, `12500`, `125.5`, 1), http.StatusBadRequest, "amount", "amount", "must be an integer number of minor units"},
		{"amount as a string", "POST", "/escrows", strings.Replace(goodBody, `12500`, `"12500"`, 1), http.StatusBadRequest, "amount", "amount", "must be an integer number of minor units"},
		{"id as a number", "POST", "/escrows", strings.Replace(goodBody, `"`+id64+`"`, `7`, 1), http.StatusBadRequest, "id", "id", "must be a JSON string"},
		{"method the route does not take", "DELETE", "/escrows/esc-1", "", http.StatusMethodNotAllowed, "method not allowed", "", ""},
		{"GET of a POST route", "GET", "/escrows/esc-1/release", "", http.StatusMethodNotAllowed, "method not allowed", "", ""},
		{"no such route", "GET", "/accounts", "", http.StatusNotFound, "no such route", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := a.call(t, tc.method, tc.path, tc.body) // fails unless the answer is JSON
			msg, _ := out["error"].(string)
			if code != tc.wantCode || !strings.Contains(msg, tc.wantError) {
				t.Errorf("got %d %q, want %d with an error containing %q", code, msg, tc.wantCode, tc.wantError)
			}
			if tc.wantField == "" {
				return
			}
			fields, _ := out["fields"].([]any)
			if len(fields) == 0 {
				t.Fatalf("got no fields in %v, want %s: %s", out, tc.wantField, tc.wantMessage)
			}
			f, _ := fields[0].(map[string]any)
			if f["field"] != tc.wantField || f["message"] != tc.wantMessage {
				t.Errorf("got field %v: %v, want %s: %s", f["field"], f["message"], tc.wantField, tc.wantMessage)
			}
		})
	}
}
