package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/webhook"
)

// StripeFront stands in front of stripe-mock (StartStripeMock): stripe-mock
// checks the wire format but holds no state, so the front answers every
// PaymentIntent's status as requires_capture (an authorised escrow
// payment), counts the capture and refund requests per PaymentIntent with
// their Idempotency-Keys, and fails the first requests of a PaymentIntent
// when told to (Fail).
type StripeFront struct {
	// URL is the front's base URL, for STRIPE_API_BASE.
	URL string

	mu       sync.Mutex
	proxy    *httputil.ReverseProxy
	requests map[string][]string // "capture pi_x" / "refund pi_x" → idempotency keys seen
	failures map[string]int      // PaymentIntent → 500s still to answer
}

var stripePIPath = regexp.MustCompile(`^/v1/payment_intents/(pi_[A-Za-z0-9_]+)(/capture)?$`)

// StartStripeFront starts a front for the stripe-mock at mockURL, closed at
// cleanup.
func StartStripeFront(t testing.TB, mockURL string) *StripeFront {
	t.Helper()
	u, err := url.Parse(mockURL)
	if err != nil {
		t.Fatalf("stripe front: %v", err)
	}
	f := &StripeFront{proxy: httputil.NewSingleHostReverseProxy(u), requests: map[string][]string{}, failures: map[string]int{}}
	f.proxy.ModifyResponse = func(resp *http.Response) error {
		m := stripePIPath.FindStringSubmatch(resp.Request.URL.Path)
		if resp.Request.Method != http.MethodGet || m == nil || m[2] != "" || resp.StatusCode != http.StatusOK {
			return nil
		}
		var pi map[string]any
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &pi); err != nil {
			return err
		}
		pi["id"], pi["status"] = m[1], "requires_capture"
		b, _ = json.Marshal(pi)
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *StripeFront) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var op, pi string
	if m := stripePIPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost && m[2] == "/capture" {
		op, pi = "capture", m[1]
	}
	if r.Method == http.MethodPost && r.URL.Path == "/v1/refunds" {
		form, _ := url.ParseQuery(string(body))
		op, pi = "refund", form.Get("payment_intent")
	}
	if op != "" {
		f.mu.Lock()
		f.requests[op+" "+pi] = append(f.requests[op+" "+pi], r.Header.Get("Idempotency-Key"))
		fail := f.failures[pi] > 0
		if fail {
			f.failures[pi]--
		}
		f.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error":{"type":"api_error","message":"injected failure"}}`)
			return
		}
	}
	f.proxy.ServeHTTP(w, r)
}

// Fail makes the next n capture or refund requests of PaymentIntent pi
// answer 500.
func (f *StripeFront) Fail(pi string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[pi] = n
}

// Keys returns the Idempotency-Keys of the op ("capture" or "refund")
// requests seen for PaymentIntent pi, in order.
func (f *StripeFront) Keys(op, pi string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests[op+" "+pi]...)
}

// Requests returns the number of requests per "capture pi_x" / "refund pi_x".
func (f *StripeFront) Requests() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := make(map[string]int, len(f.requests))
	for k, v := range f.requests {
		got[k] = len(v)
	}
	return got
}

// WebhookReceiver is a partner's webhook endpoint: it verifies every request
// with the exported webhook.Verify, counts verified deliveries per
// webhook-id, and fails the first deliveries of an event when told to.
type WebhookReceiver struct {
	// URL is the endpoint to put in the partner registry.
	URL string

	mu       sync.Mutex
	secret   string
	got      map[string]int // webhook-id → verified deliveries
	bodies   map[string][]byte
	failures map[string]int
	bad      int
}

// StartWebhookReceiver starts a receiver verifying with secret (whsec_…),
// closed at cleanup.
func StartWebhookReceiver(t testing.TB, secret string) *WebhookReceiver {
	t.Helper()
	rc := &WebhookReceiver{secret: secret, got: map[string]int{}, bodies: map[string][]byte{}, failures: map[string]int{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	rc.URL = srv.URL + "/hooks"
	return rc
}

func (rc *WebhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := webhook.Verify(rc.secret, r.Header, body, 5*time.Minute); err != nil {
		rc.mu.Lock()
		rc.bad++
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := r.Header.Get("webhook-id")
	rc.mu.Lock()
	rc.got[id]++
	rc.bodies[id] = body
	fail := rc.failures[id] > 0
	if fail {
		rc.failures[id]--
	}
	rc.mu.Unlock()
	if fail {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Fail makes the next n deliveries of webhook-id id answer 503.
func (rc *WebhookReceiver) Fail(id string, n int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.failures[id] = n
}

// Deliveries returns the verified deliveries per webhook-id and the number
// of requests that failed verification.
func (rc *WebhookReceiver) Deliveries() (got map[string]int, bad int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	got = make(map[string]int, len(rc.got))
	for k, v := range rc.got {
		got[k] = v
	}
	return got, rc.bad
}

// Body returns the last verified body delivered under webhook-id id.
func (rc *WebhookReceiver) Body(id string) []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.bodies[id]
}
