package monitor

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestThrottleMemoryIsBounded: a flood of failures from more clients than
// the table holds keeps it at its cap, forgets the least recently seen
// client first, and still throttles the clients it remembers.
func TestThrottleMemoryIsBounded(t *testing.T) {
	th := newLoginThrottle(3, time.Minute, slog.New(slog.DiscardHandler))
	th.cap = 1000
	req := func(ip string) *http.Request {
		r := httptest.NewRequest("GET", "/api/v1/stats", nil)
		r.RemoteAddr = ip + ":40000"
		return r
	}
	for i := 0; i < 50_000; i++ {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		th.fail(req(ip), "api")
		if got := th.size(); got > th.cap {
			t.Fatalf("after %d clients: got %d remembered, want at most %d", i+1, got, th.cap)
		}
	}
	if got := th.size(); got != th.cap {
		t.Errorf("got %d remembered, want %d", got, th.cap)
	}
	// IPv6 clients count by /64: rotating the low bits does not escape.
	for i := 0; i < 3; i++ {
		th.fail(req(fmt.Sprintf("[2001:db8:1:2::%x]", i+1)), "ui")
	}
	if w := httptest.NewRecorder(); !th.refuse(w, req("[2001:db8:1:2::ffff]")) || w.Code != http.StatusTooManyRequests {
		t.Errorf("another address of a throttled /64: got %d, want 429", w.Code)
	}
	if w := httptest.NewRecorder(); th.refuse(w, req("[2001:db8:1:3::1]")) {
		t.Errorf("another /64: got %d, want it let through", w.Code)
	}
	// The oldest clients were forgotten, the newest are remembered.
	if _, ok := th.clients[clientKey(req("10.0.0.0"))]; ok {
		t.Errorf("the first client is still remembered; want the least recently seen forgotten")
	}
	if _, ok := th.clients[clientKey(req(fmt.Sprintf("10.%d.%d.%d", 49_999>>16&255, 49_999>>8&255, 49_999&255)))]; !ok {
		t.Errorf("the last client is forgotten; want it remembered")
	}
}

// TestThrottleWindowEnds: a throttled client is let through again once its
// window has passed (a clock the test moves, no sleeping).
func TestThrottleWindowEnds(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newLoginThrottle(2, time.Minute, slog.New(slog.DiscardHandler))
	th.now = func() time.Time { return now }
	r := httptest.NewRequest("GET", "/monitor/", nil)
	r.RemoteAddr = "192.0.2.1:5000"
	th.fail(r, "ui")
	th.fail(r, "ui")
	w := httptest.NewRecorder()
	if !th.refuse(w, r) || w.Header().Get("Retry-After") != "60" {
		t.Fatalf("after 2 failures: got %d Retry-After %q, want 429 and 60", w.Code, w.Header().Get("Retry-After"))
	}
	now = now.Add(45 * time.Second)
	w = httptest.NewRecorder()
	if !th.refuse(w, r) || w.Header().Get("Retry-After") != "15" {
		t.Errorf("45 s later: got %d Retry-After %q, want 429 and 15", w.Code, w.Header().Get("Retry-After"))
	}
	now = now.Add(15 * time.Second)
	if w := httptest.NewRecorder(); th.refuse(w, r) {
		t.Errorf("when the window ended: got %d, want the client let through", w.Code)
	}
}
