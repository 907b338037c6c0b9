package email_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/hibiken/asynq"
)

// resendRequest is what the fake Resend API saw of one request.
type resendRequest struct {
	Method, Path, IdempotencyKey, Authorization string
	Body                                        struct {
		From    string   `json:"from"`
		To      []string `json:"to"`
		Subject string   `json:"subject"`
		Text    string   `json:"text"`
		HTML    string   `json:"html"`
	}
}

// fakeResend is an httptest Resend API that records requests and answers
// each with answer.
type fakeResend struct {
	mu       sync.Mutex
	requests []resendRequest
	answer   func(w http.ResponseWriter)
	srv      *httptest.Server
}

func startFakeResend(t *testing.T) *fakeResend {
	t.Helper()
	f := &fakeResend{answer: func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}`)
	}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rec resendRequest
		rec.Method, rec.Path = r.Method, r.URL.Path
		rec.IdempotencyKey, rec.Authorization = r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&rec.Body); err != nil {
			t.Errorf("fake resend: decode body: %v", err)
		}
		f.mu.Lock()
		f.requests = append(f.requests, rec)
		answer := f.answer
		f.mu.Unlock()
		answer(w)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeResend) setAnswer(status int, header map[string]string, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func (f *fakeResend) seen() []resendRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]resendRequest(nil), f.requests...)
}

func newResend(t *testing.T, base string) *email.Resend {
	t.Helper()
	r, err := email.NewResend(email.ResendConfig{APIKey: "re_test_123", From: from, BaseURL: base}, nil)
	if err != nil {
		t.Fatalf("NewResend: %v", err)
	}
	return r
}

func TestResendDeliversEachKind(t *testing.T) {
	f := startFakeResend(t)
	mailer := newResend(t, f.srv.URL)
	const to = "jane.doe@example.com"
	for i, tc := range kindCases(to) {
		if err := mailer.SendMail(context.Background(), handlers.Mail{JobID: "job-" + tc.data.TaskType(), To: to, Data: tc.data}); err != nil {
			t.Fatalf("SendMail %s: got error %v, want nil", tc.name, err)
		}
		got := f.seen()[i]
		if got.Method != http.MethodPost || got.Path != "/emails" {
			t.Errorf("%s: request: got %s %s, want POST /emails", tc.name, got.Method, got.Path)
		}
		if got.Authorization != "Bearer re_test_123" {
			t.Errorf("%s: Authorization: got %q, want Bearer re_test_123", tc.name, got.Authorization)
		}
		if want := email.IdempotencyKey("job-" + tc.data.TaskType()); got.IdempotencyKey != want {
			t.Errorf("%s: Idempotency-Key: got %q, want %q", tc.name, got.IdempotencyKey, want)
		}
		if got.Body.From != `"Example Escrow" <escrow@mail.example.com>` {
			t.Errorf("%s: from: got %q, want the MAIL_FROM address", tc.name, got.Body.From)
		}
		if len(got.Body.To) != 1 || got.Body.To[0] != to {
			t.Errorf("%s: to: got %v, want [%s]", tc.name, got.Body.To, to)
		}
		if got.Body.Subject != tc.subject {
			t.Errorf("%s: subject: got %q, want %q", tc.name, got.Body.Subject, tc.subject)
		}
		for _, w := range tc.text {
			if !strings.Contains(got.Body.Text, w) {
				t.Errorf("%s: text: got %q, want it to contain %q", tc.name, got.Body.Text, w)
			}
		}
		for _, w := range tc.html {
			if !strings.Contains(got.Body.HTML, w) {
				t.Errorf("%s: html: got %q, want it to contain %q", tc.name, got.Body.HTML, w)
			}
		}
	}
}

func TestResendIdempotencyKeyIsStableAcrossAttempts(t *testing.T) {
	f := startFakeResend(t)
	mailer := newResend(t, f.srv.URL+"/") // a trailing slash or not
	for _, id := range []string{"job-a", "job-a", "job-b"} {
		if err := mailer.SendMail(context.Background(), mail(id, "jane.doe@example.com")); err != nil {
			t.Fatalf("SendMail(%s): %v", id, err)
		}
	}
	got := f.seen()
	if len(got) != 3 {
		t.Fatalf("requests: got %d, want 3", len(got))
	}
	if got[0].IdempotencyKey == "" || got[0].IdempotencyKey != got[1].IdempotencyKey {
		t.Errorf("Idempotency-Key of two attempts of job-a: got %q and %q, want equal and not empty", got[0].IdempotencyKey, got[1].IdempotencyKey)
	}
	if got[2].IdempotencyKey == got[0].IdempotencyKey {
		t.Errorf("Idempotency-Key of job-b: got %q, want different from job-a's", got[2].IdempotencyKey)
	}
}

func TestResendErrorMapping(t *testing.T) {
	const to = "jane.doe@example.com"
	for _, tc := range []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		permanent  bool
		retryAfter time.Duration // 0: no RetryAfterError
	}{
		{"422 invalid", 422, nil, `{"statusCode":422,"name":"validation_error","message":"Invalid to field: jane.doe@example.com"}`, true, 0},
		{"400 bad request", 400, nil, `{"statusCode":400,"name":"validation_error","message":"bad"}`, true, 0},
		{"401 bad key", 401, nil, `{"statusCode":401,"name":"missing_api_key","message":"Missing API key"}`, true, 0},
		{"403 domain not verified", 403, nil, `{"statusCode":403,"name":"validation_error","message":"domain not verified"}`, true, 0},
		{"408 timeout", 408, nil, `{"message":"timeout"}`, false, 0},
		{"409 concurrent idempotent request", 409, nil, `{"statusCode":409,"name":"concurrent_idempotent_requests","message":"in progress"}`, false, 0},
		{"429 with Retry-After", 429, map[string]string{"Retry-After": "30"}, `{"statusCode":429,"name":"rate_limit_exceeded","message":"Too many requests"}`, false, 30 * time.Second},
		{"429 without Retry-After", 429, nil, `{"message":"Too many requests"}`, false, 0},
		{"500", 500, nil, `{"statusCode":500,"name":"internal_server_error","message":"oops"}`, false, 0},
		{"503 with Retry-After", 503, map[string]string{"Retry-After": "12"}, `not json`, false, 12 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeResend(t)
			f.setAnswer(tc.status, tc.header, tc.body)
			err := newResend(t, f.srv.URL).SendMail(context.Background(), mail("job-1", to))
			if err == nil {
				t.Fatalf("SendMail: got nil error, want one")
			}
			t.Logf("error: %v", err)
			if got := errors.Is(err, asynq.SkipRetry); got != tc.permanent {
				t.Errorf("permanent (errors.Is SkipRetry): got %v, want %v", got, tc.permanent)
			}
			var ra *retry.AfterError
			gotRA := errors.As(err, &ra)
			switch {
			case tc.retryAfter == 0 && gotRA:
				t.Errorf("RetryAfterError: got one (%s), want none", ra.After)
			case tc.retryAfter != 0 && !gotRA:
				t.Errorf("RetryAfterError: got none, want one of %s", tc.retryAfter)
			case tc.retryAfter != 0 && ra.After != tc.retryAfter:
				t.Errorf("RetryAfterError.After: got %s, want %s", ra.After, tc.retryAfter)
			}
			if tc.retryAfter != 0 {
				if got := retry.Delay(0, err); got != tc.retryAfter {
					t.Errorf("retry.Delay: got %s, want the peer's %s", got, tc.retryAfter)
				}
			}
			if strings.Contains(err.Error(), to) {
				t.Errorf("error: got %q, want the recipient masked", err)
			}
		})
	}
	t.Run("503 with Retry-After as a date", func(t *testing.T) {
		f := startFakeResend(t)
		f.setAnswer(503, map[string]string{"Retry-After": time.Now().Add(20 * time.Second).UTC().Format(http.TimeFormat)}, `{}`)
		err := newResend(t, f.srv.URL).SendMail(context.Background(), mail("job-1", to))
		var ra *retry.AfterError
		if !errors.As(err, &ra) || ra.After < 18*time.Second || ra.After > 20*time.Second {
			t.Errorf("SendMail: got %v, want a RetryAfterError of about 20s", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		f := startFakeResend(t)
		url := f.srv.URL
		f.srv.Close()
		err := newResend(t, url).SendMail(context.Background(), mail("job-1", to))
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Errorf("SendMail to a closed server: got %v, want a transient error", err)
		}
	})
}

func TestNewResendChecksConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  email.ResendConfig
		want string
	}{
		{email.ResendConfig{From: from}, "RESEND_API_KEY"},
		{email.ResendConfig{APIKey: "re_1"}, "MAIL_FROM"},
		{email.ResendConfig{APIKey: "re_1", From: from, BaseURL: "ftp://x"}, "RESEND_API_BASE"},
		{email.ResendConfig{APIKey: "re_1", From: from, BaseURL: "://x"}, "RESEND_API_BASE"},
	} {
		_, err := email.NewResend(tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewResend(%+v): got error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
}
