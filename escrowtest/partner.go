package escrowtest

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

	"github.com/escrowjobs/escrowjobs/webhook"
)

// Answer is how a Partner answers one request.
type Answer struct {
	// Status is the HTTP status; 0 is 204.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Hang holds the request until the sender gives up (its timeout).
	Hang bool
}

// Request is one request a Partner saw.
type Request struct {
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

// Partner is a partner's endpoint on loopback for the partner-delivery
// tests: it verifies every request with the exported webhook.Verify,
// answers as a scripted partner would (any status, Retry-After, or hanging
// until the sender gives up) and records every request with its arrival
// time, plus the most requests it held at once. Receiver is the simpler
// endpoint that only fails on demand.
type Partner struct {
	// URL is the endpoint for the partner registry.
	URL string
	// Secret is the partner's whsec_ secret.
	Secret string

	answer atomic.Pointer[func(n int) Answer]

	delivered atomic.Int64

	mu          sync.Mutex
	requests    []Request
	inFlight    int
	maxInFlight int
}

// StartPartner starts a receiver that answers 204 until Answer
// says otherwise; it stops when the test ends.
func StartPartner(t testing.TB) *Partner {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	r := &Partner{Secret: "whsec_" + base64.StdEncoding.EncodeToString(key)}
	r.Answer(func(int) Answer { return Answer{} })
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hooks/escrow"
	return r
}

// Answer sets how the receiver answers; n is the 0-based index of the
// request among all it received.
func (r *Partner) Answer(f func(n int) Answer) { r.answer.Store(&f) }

func (r *Partner) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	rec := Request{ID: req.Header.Get("webhook-id"), At: time.Now(), Body: body}
	rec.VerifyErr = webhook.Verify(r.Secret, req.Header, body, 0) // 0: the default tolerance
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
func (r *Partner) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// Delivered counts, per webhook-id, the verified requests answered 2xx.
func (r *Partner) Delivered() map[string]int {
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
func (r *Partner) DeliveredCount() int { return int(r.delivered.Load()) }

// InFlight is how many requests the receiver holds now.
func (r *Partner) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inFlight
}

// MaxInFlight is the most requests the receiver held at once.
func (r *Partner) MaxInFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxInFlight
}
