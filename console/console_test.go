package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/console"
	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/repair"
)

// conflicted is a desk whose every repair loses a race to another one
// (repair.ErrConflict) or finds the dead letter resolved already.
type conflicted struct {
	err   error
	calls int
}

func (c *conflicted) entry() deadletter.Entry {
	return deadletter.Entry{ID: "stripe_capture_payment:capture-pi_1", Type: "stripe_capture_payment", Queue: "critical",
		State: deadletter.StateOpen, Why: deadletter.WhyPermanent, Attempts: 1, FailedAt: time.Now(),
		Payload: []byte(`{"transactionId":"esc-1","paymentIntentId":"pi_1"}`), Error: "mailbox jane.doe@example.com full"}
}

func (c *conflicted) List(context.Context, deadletter.Filter, string, int) (deadletter.Page, error) {
	return deadletter.Page{Entries: []deadletter.Entry{c.entry()}}, nil
}
func (c *conflicted) Get(context.Context, string) (deadletter.Entry, error) { return c.entry(), nil }
func (c *conflicted) History(context.Context, string) ([]deadletter.Entry, error) {
	return []deadletter.Entry{c.entry()}, nil
}
func (c *conflicted) Requeue(context.Context, string, string, string) (deadletter.Entry, error) {
	c.calls++
	return deadletter.Entry{}, fmt.Errorf("requeue: %w", c.err)
}
func (c *conflicted) Discard(context.Context, string, string, string) (deadletter.Entry, error) {
	c.calls++
	return deadletter.Entry{}, fmt.Errorf("discard: %w", c.err)
}
func (c *conflicted) RequeueMatching(context.Context, deadletter.Filter, bool, string, string) (repair.Bulk, error) {
	c.calls++
	return repair.Bulk{}, fmt.Errorf("bulk: %w", c.err)
}

func serve(t *testing.T, cfg console.Config) (*httptest.Server, func(method, path string, form url.Values) (int, string)) {
	t.Helper()
	c, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return srv, func(method, path string, form url.Values) (int, string) {
		t.Helper()
		var req *http.Request
		if form != nil {
			req, _ = http.NewRequest(method, srv.URL+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req, _ = http.NewRequest(method, srv.URL+path, nil)
		}
		req.SetBasicAuth("alice", "not checked here")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
}

var token = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestConflictsAreShownAsSuch: a repair that loses to another (the desk's
// ErrConflict, or the dead letter resolved first) is a 409 page that says
// so, never a success message.
func TestConflictsAreShownAsSuch(t *testing.T) {
	for _, cause := range []error{repair.ErrConflict, deadletter.ErrNotOpen} {
		desk := &conflicted{err: cause}
		_, do := serve(t, console.Config{DeadLetters: desk, Ledger: "test ledger"})
		code, body := do(http.MethodGet, "/console/dead-letters/stripe_capture_payment:capture-pi_1", nil)
		m := token.FindStringSubmatch(body)
		if code != http.StatusOK || m == nil {
			t.Fatalf("dead letter page: %d, token %v", code, m)
		}
		if strings.Contains(body, "jane.doe@example.com") || !strings.Contains(body, "j***@example.com") {
			t.Errorf("the error is not masked")
		}
		for _, a := range []string{"requeue", "discard", "bulk-requeue"} {
			code, body := do(http.MethodPost, "/console/actions/"+a, url.Values{"csrf": {m[1]}, "id": {"stripe_capture_payment:capture-pi_1"}, "reason": {"r"}})
			if code != http.StatusConflict || !strings.Contains(body, cause.Error()) || strings.Contains(body, "flash-ok") {
				t.Errorf("%s losing with %v: got %d %.300s; want 409 naming the conflict", a, cause, code, body)
			}
		}
		if desk.calls != 3 {
			t.Errorf("got %d desk calls, want 3", desk.calls)
		}
	}
}

// TestTokensAreBoundToTheUserAndTheKey: a form token works for the user it
// was rendered for, under the key that signed it.
func TestTokensAreBoundToTheUserAndTheKey(t *testing.T) {
	desk := &conflicted{err: deadletter.ErrNotOpen}
	key := []byte("0123456789abcdef0123456789abcdef")
	srv, do := serve(t, console.Config{DeadLetters: desk, CSRFKey: key})
	_, body := do(http.MethodGet, "/console/dead-letters", nil)
	alices := token.FindStringSubmatch(body)[1]

	// bob posts alice's token
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/console/actions/requeue",
		strings.NewReader(url.Values{"csrf": {alices}, "id": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("bob", "x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || desk.calls != 0 {
		t.Errorf("bob with alice's token: got %d (%d calls), want 403 and nothing done", resp.StatusCode, desk.calls)
	}
	// another key
	_, other := serve(t, console.Config{DeadLetters: desk, CSRFKey: []byte("another key, another monitor....")})
	if code, _ := other(http.MethodPost, "/console/actions/requeue", url.Values{"csrf": {alices}, "id": {"x"}}); code != http.StatusForbidden || desk.calls != 0 {
		t.Errorf("a token of another key: got %d, want 403", code)
	}
	// the same key (a monitor restarted with it) takes it
	_, same := serve(t, console.Config{DeadLetters: desk, CSRFKey: key})
	if code, _ := same(http.MethodPost, "/console/actions/requeue", url.Values{"csrf": {alices}, "id": {"x"}}); code != http.StatusConflict || desk.calls != 1 {
		t.Errorf("alice's token under the same key: got %d, want the desk's 409", code)
	}
}

// TestMissingStoresAnswer503: a console built without a store says so on
// the pages that need it, and every page still renders its layout.
func TestMissingStoresAnswer503(t *testing.T) {
	_, do := serve(t, console.Config{ReadOnly: true})
	for _, path := range []string{"/console/dead-letters", "/console/dead-letters/x", "/console/flows", "/console/flows/release:esc-1", "/console/partners"} {
		code, body := do(http.MethodGet, path, nil)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "started without it") || !strings.Contains(body, "read-only") {
			t.Errorf("GET %s: got %d %.300s; want 503", path, code, body)
		}
	}
	if code, _ := do(http.MethodGet, "/console/escrows/esc-1", nil); code != http.StatusOK {
		t.Errorf("an escrow page without stores: got %d, want an empty page", code)
	}
	if code, body := do(http.MethodGet, "/console/nothing", nil); code != http.StatusNotFound || !strings.Contains(body, "escrowjobs console") {
		t.Errorf("GET /console/nothing: got %d", code)
	}
	if code, _ := do(http.MethodGet, "/console/", nil); code != http.StatusFound {
		t.Errorf("GET /console/: got %d, want a redirect to the dead letters", code)
	}
}
