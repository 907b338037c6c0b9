package testenv

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// WebhookAnswer is how a WebhookReceiver answers one request.
type WebhookAnswer struct {
	// Status is the HTTP status; 0 is 204.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Hang holds the request until the sender gives up (its timeout).
	Hang bool
}

// WebhookRequest is one request a WebhookReceiver saw.
type WebhookRequest struct {
	// ID is the webhook-id header.
	ID   string
	At   time.Time
	Body []byte
	// Status is what the receiver answered (0 for a hung request).
	Status int
	// VerifyErr is the verify function's verdict; the request is answered
	// 401 when it is not nil.
	VerifyErr error
}

// WebhookReceiver is a partner's endpoint on loopback: it verifies every
// request's Standard Webhooks signature with the verify function it was
// started with (webhook.Verify: testenv cannot import the webhook package,
// whose own tests use testenv), answers as told and records what it saw,
// including how many requests were in flight at once.
type WebhookReceiver struct {
	// URL is the endpoint for the partner registry.
	URL string
	// Secret is the partner's whsec_ secret.
	Secret string

	verify func(secret string, h http.Header, body []byte, tolerance time.Duration) error
	answer atomic.Pointer[func(n int) WebhookAnswer]

	delivered atomic.Int64

	mu          sync.Mutex
	requests    []WebhookRequest
	inFlight    int
	maxInFlight int
}

// StartWebhookReceiver starts a receiver that answers 204 until Answer
// says otherwise; it stops when the test ends.
func StartWebhookReceiver(t testing.TB, verify func(secret string, h http.Header, body []byte, tolerance time.Duration) error) *WebhookReceiver {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	r := &WebhookReceiver{Secret: "whsec_" + base64.StdEncoding.EncodeToString(key), verify: verify}
	r.Answer(func(int) WebhookAnswer { return WebhookAnswer{} })
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hooks/escrow"
	return r
}

// Answer sets how the receiver answers; n is the 0-based index of the
// request among all it received.
func (r *WebhookReceiver) Answer(f func(n int) WebhookAnswer) { r.answer.Store(&f) }

func (r *WebhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	rec := WebhookRequest{ID: req.Header.Get("webhook-id"), At: time.Now(), Body: body}
	rec.VerifyErr = r.verify(r.Secret, req.Header, body, 0) // 0: the default tolerance
	r.mu.Lock()
	n := len(r.requests)
	r.requests = append(r.requests, rec)
	r.inFlight++
	r.maxInFlight = max(r.maxInFlight, r.inFlight)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight--
		r.mu.Unlock()
	}()
	a := (*r.answer.Load())(n)
	status := a.Status
	switch {
	case rec.VerifyErr != nil:
		status = http.StatusUnauthorized
	case a.Hang:
		<-req.Context().Done()
		return
	case status == 0:
		status = http.StatusNoContent
	}
	r.mu.Lock()
	r.requests[n].Status = status
	r.mu.Unlock()
	if rec.VerifyErr == nil && status >= 200 && status <= 299 {
		r.delivered.Add(1)
	}
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	w.WriteHeader(status)
}

// Requests returns every request so far, in arrival order.
func (r *WebhookReceiver) Requests() []WebhookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]WebhookRequest(nil), r.requests...)
}

// Delivered counts, per webhook-id, the verified requests answered 2xx.
func (r *WebhookReceiver) Delivered() map[string]int {
	out := map[string]int{}
	for _, q := range r.Requests() {
		if q.VerifyErr == nil && q.Status >= 200 && q.Status <= 299 {
			out[q.ID]++
		}
	}
	return out
}

// DeliveredCount is how many verified requests were answered 2xx; cheap
// enough to poll while measuring throughput.
func (r *WebhookReceiver) DeliveredCount() int { return int(r.delivered.Load()) }

// MaxInFlight is the most requests the receiver held at once.
func (r *WebhookReceiver) MaxInFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxInFlight
}
