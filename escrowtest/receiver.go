package escrowtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/webhook"
)

// Receiver is a webhook endpoint (a partner's, or the watchdog's alert
// endpoint). It verifies every request with the exported webhook.Verify
// and checks its body (by default EventBody: data.eventId is the
// webhook-id), counts verified deliveries per webhook-id (on arrival),
// keeps every verified delivery in order, and refuses the rest with 401. FailNext
// makes it answer 503 to an event's next deliveries; SetDelay holds the
// answer back after counting, so a worker can die in between.
type Receiver struct {
	// URL is the endpoint's base URL; any path is accepted.
	URL string

	secret   string
	check    func(r *http.Request, body []byte) error
	srv      *httptest.Server
	inflight atomic.Int64

	mu       sync.Mutex
	got      map[string]int    // webhook-id → verified deliveries
	bodies   map[string][]byte // webhook-id → last verified body
	all      []Delivered       // every verified delivery, in order
	failures map[string]int    // webhook-id → 503s still to answer
	refused  []string          // why a request was refused
	delay    func(id string) time.Duration
}

// Delivered is one verified delivery.
type Delivered struct {
	ID     string // webhook-id
	Header http.Header
	Body   []byte
}

// StartReceiver starts a receiver that verifies with secret (whsec_…) and
// checks each body with check (EventBody when none is given); it stops at
// cleanup.
func StartReceiver(t testing.TB, secret string, check ...func(r *http.Request, body []byte) error) *Receiver {
	t.Helper()
	rc := &Receiver{secret: secret, check: EventBody, got: map[string]int{}, bodies: map[string][]byte{}, failures: map[string]int{},
		delay: func(string) time.Duration { return 0 }}
	if len(check) > 0 {
		rc.check = check[0]
	}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	rc.URL = rc.srv.URL
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.inflight.Add(1)
	defer rc.inflight.Add(-1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = webhook.Verify(rc.secret, r.Header, body, 0)
	}
	id := r.Header.Get("webhook-id")
	if err == nil {
		err = rc.check(r, body)
	}
	rc.mu.Lock()
	if err != nil {
		rc.refused = append(rc.refused, err.Error())
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	rc.got[id]++
	rc.bodies[id] = body
	rc.all = append(rc.all, Delivered{ID: id, Header: r.Header.Clone(), Body: body})
	fail := rc.failures[id] > 0
	if fail {
		rc.failures[id]--
	}
	delay := rc.delay(id)
	rc.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if fail {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// FailNext answers the next n deliveries of webhook-id id with 503.
func (rc *Receiver) FailNext(id string, n int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.failures[id] += n
}

// SetDelay holds each answer back for fn(webhook-id) after counting it.
func (rc *Receiver) SetDelay(fn func(id string) time.Duration) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.delay = fn
}

// Count is the number of verified deliveries of webhook-id id.
func (rc *Receiver) Count(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.got[id]
}

// Body is the last verified body of webhook-id id.
func (rc *Receiver) Body(id string) []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.bodies[id])
}

// Deliveries returns the verified deliveries per webhook-id and why the
// refused requests were refused.
func (rc *Receiver) Deliveries() (got map[string]int, refused []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return clone(rc.got), slices.Clone(rc.refused)
}

// Inflight is the number of requests being answered now.
func (rc *Receiver) Inflight() int64 { return rc.inflight.Load() }

// Received returns every verified delivery, oldest first.
func (rc *Receiver) Received() []Delivered {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.all)
}

// EventBody checks that a webhook body carries its webhook-id as
// data.eventId (escrow events and the dispute fan-out).
func EventBody(r *http.Request, body []byte) error {
	id := r.Header.Get("webhook-id")
	var hook struct {
		Data struct {
			EventID string `json:"eventId"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &hook); err != nil || hook.Data.EventID != id {
		return fmt.Errorf("body %q does not carry webhook-id %q", body, id)
	}
	return nil
}
