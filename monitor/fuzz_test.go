package monitor_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
)

var emailInBody = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+`)

// FuzzEnqueueAPI sends arbitrary bodies to POST /api/v1/jobs through the real
// handler and a real Redis. Whatever arrives, the answer is a client error or
// a success with an ID, never a 5xx or a non-JSON body, and it never echoes
// an e-mail address from the request.
func FuzzEnqueueAPI(f *testing.F) {
	for _, seed := range []string{
		`{"type":"send_release_email","payload":{"transactionId":"esc-1","recipientEmail":"a@example.com","amount":1,"currency":"USD"}}`,
		`{"type":"send_release_email","payload":{"transactionId":"esc-1","recipientEmail":"a@example.com\r\nBcc: v@example.com","amount":1,"currency":"USD"}}`,
		`{"type":"stripe_refund_payment","payload":{"transactionId":"t","paymentIntentId":"pi_1"},"dedupeKey":"k-1","processIn":"10s"}`,
		`{"type":"audit_log_created","payload":{"eventId":"e","actor":"a","action":"x","occurredAt":"2026-01-01T00:00:00Z","metadata":{"k":1}},"processIn":-5}`,
		`{"type":"nope@example.com","payload":{}}`,
		`{"type":"send_dispute_email","payload":"a@example.com"}`,
		`{"type":1}`, `[]`, `null`, ``, `{"type":"send_release_email","payload":{},"extra":true}`,
	} {
		f.Add([]byte(seed))
	}
	opt, err := asynq.ParseRedisURI(peertest.Redis(f))
	if err != nil {
		f.Fatal(err)
	}
	m, err := monitor.New(monitor.Config{RedisOpt: opt, APIToken: testToken, Username: testUser, Password: testPassword})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	h := m.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/jobs", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated, http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("got status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("got a non-JSON answer %q", rec.Body)
		}
		for _, addr := range emailInBody.FindAll(body, -1) {
			if bytes.Contains(rec.Body.Bytes(), addr) {
				t.Fatalf("the answer echoes %q: %s", addr, rec.Body)
			}
		}
	})
}
