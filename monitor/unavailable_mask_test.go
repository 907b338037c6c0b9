package monitor

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A 503 that echoes the error of Redis or the ledger masks it: no
// address, no password of a URL, no URL query; the same for every error
// answer.
func TestUnavailableAnswersAreMasked(t *testing.T) {
	err := errors.New(`dial redis://default:pw_hunter22@redis.internal:6379/0 for jane.doe@example.com: ` +
		`Post "https://ledger.internal/x?token=tok_s3cret": refused`)
	m := &Monitor{log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		name string
		call func(w http.ResponseWriter)
	}{
		{"dead-letter route", func(w http.ResponseWriter) { m.deadLetterError(w, "requeue", "send_release_email:x", err) }},
		{"any error answer", func(w http.ResponseWriter) {
			writeError(w, http.StatusServiceUnavailable, codeUnavailable, "try again: "+err.Error())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.call(rec)
			if rec.Code != http.StatusServiceUnavailable {
				t.Errorf("status: got %d, want 503", rec.Code)
			}
			body := rec.Body.String()
			for _, secret := range []string{"pw_hunter22", "jane.doe", "tok_s3cret"} {
				if strings.Contains(body, secret) {
					t.Errorf("body: got %q, want no %q", body, secret)
				}
			}
			if want := "redis://xxxxx@redis.internal:6379/0"; !strings.Contains(body, want) {
				t.Errorf("body: got %q, want it to hold %q", body, want)
			}
		})
	}
}
