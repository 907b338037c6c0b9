package email

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/internal/apiurl"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/resend/resend-go/v3"
)

// DefaultResendBaseURL is the Resend API.
const DefaultResendBaseURL = "https://api.resend.com/"

// ResendConfig configures a Resend mailer.
type ResendConfig struct {
	// APIKey is RESEND_API_KEY.
	APIKey string
	// From is MAIL_FROM, the sender: "escrow@example.com" or
	// "Example Escrow <escrow@example.com>".
	From string
	// BaseURL is RESEND_API_BASE; empty is DefaultResendBaseURL. Tests point
	// it at an httptest server.
	BaseURL string
	// HTTPClient makes the requests; nil is a client with a 30 s timeout.
	// It is copied, not changed.
	HTTPClient *http.Client
}

// Resend delivers mails through the Resend API. It is safe for concurrent use.
type Resend struct {
	client *resend.Client
	from   string
	log    *slog.Logger
}

var _ handlers.Mailer = (*Resend)(nil)

// NewResend checks cfg and returns a Resend mailer. It makes no request.
// log receives one line per delivered mail; nil discards them.
func NewResend(cfg ResendConfig, log *slog.Logger) (*Resend, error) {
	key := strings.TrimSpace(cfg.APIKey)
	if key == "" {
		return nil, errors.New("RESEND_API_KEY is empty")
	}
	from, _, err := parseFrom(cfg.From)
	if err != nil {
		return nil, err
	}
	u, err := apiurl.Parse("RESEND_API_BASE", cfg.BaseURL, DefaultResendBaseURL)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/" // the client resolves "emails" against it
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	hc.Transport = statusRecorder{base: hc.Transport}
	client := resend.NewCustomClient(hc, key)
	client.BaseURL = u
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Resend{client: client, from: from.String(), log: log}, nil
}

// SendMail renders m and sends it with Idempotency-Key IdempotencyKey(m.JobID),
// so a retry within Resend's 24 hours is not delivered twice. HTTP 4xx
// other than 408, 409 and 429 is permanent (wraps asynq.SkipRetry); 408,
// 409, 429, 5xx and network errors are transient, with the answer's
// Retry-After as a *retry.AfterError when it has one.
func (r *Resend) SendMail(ctx context.Context, m handlers.Mail) error {
	rendered, err := Render(m)
	if err != nil {
		return err
	}
	taskType, to := m.Data.TaskType(), payloads.MaskEmail(m.To)
	where := "resend: " + taskType + " to " + to
	if m.JobID == "" {
		return permanent(errors.New(where + ": mail has no job ID to derive the Idempotency-Key from"))
	}
	if m.To == "" {
		return permanent(errors.New(where + ": mail has no recipient"))
	}
	var answer response
	ctx = context.WithValue(ctx, responseKey{}, &answer)
	sent, err := r.client.Emails.SendWithOptions(ctx, &resend.SendEmailRequest{
		From:    r.from,
		To:      []string{m.To},
		Subject: rendered.Subject,
		Text:    rendered.Text,
		Html:    rendered.HTML,
	}, &resend.SendEmailOptions{IdempotencyKey: IdempotencyKey(m.JobID)})
	if err != nil {
		return masked(resendFailure(where, answer, err))
	}
	r.log.InfoContext(ctx, "email sent", "via", "resend", "task_id", m.JobID, "task_type", taskType, "to", to,
		"subject", rendered.Subject, "resend_id", sent.Id)
	return nil
}

// resendFailure classifies a failed send by the HTTP status of the answer.
func resendFailure(where string, a response, err error) error {
	if a.status == 0 {
		return fmt.Errorf("%s: %w", where, err) // no answer: network, timeout
	}
	err = fmt.Errorf("%s: api answered %d: %w", where, a.status, err)
	if a.status >= 400 && a.status < 500 &&
		a.status != http.StatusRequestTimeout && a.status != http.StatusConflict && a.status != http.StatusTooManyRequests {
		return permanent(err)
	}
	return retry.AfterHeader(a.retryAfter, time.Now(), err)
}

// response is the status and Retry-After of the last HTTP answer to one
// send. resend-go keeps the status only for 429, so statusRecorder notes it
// on the way through.
type response struct {
	status     int
	retryAfter string
}

type responseKey struct{}

// statusRecorder is a RoundTripper that writes each answer's status into
// the *response in the request's context.
type statusRecorder struct{ base http.RoundTripper }

func (s statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	base := s.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if a, ok := req.Context().Value(responseKey{}).(*response); ok && resp != nil {
		a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	}
	return resp, err
}
