package partner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/escrowjobs/escrowjobs/webhook"
)

// The Sender is what the worker's webhook handler is given.

const testBody = `{"type":"escrow.status_changed","timestamp":"2024-05-01T12:00:00Z","data":{"eventId":"evt_1","transactionId":"esc-123","previousStatus":"funded","status":"released"}}`

// setup starts an https receiver running h, registers it as partner "acme"
// with two secrets (a rotation in progress), and returns a sender trusting
// the receiver's certificate. opts.AllowPrivateNetworks is forced on: the
// receiver is on loopback.
func setup(t *testing.T, h http.HandlerFunc, opts SenderOptions) (*Sender, *httptest.Server) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	path := writeRegistry(t, `{"partners": {"acme": {"url": "`+srv.URL+`/hooks/escrow", "secrets": ["`+vectorSecret+`", "`+otherSecret+`"]}}}`)
	reg, err := LoadRegistry(path, false)
	if err != nil {
		t.Fatalf("LoadRegistry: %v", err)
	}
	opts.AllowPrivateNetworks = true
	opts.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	return NewSender(reg, opts), srv
}

// received is one request as a verifying receiver saw it.
type received struct {
	header http.Header
	body   string
	errs   []error // Verify's result for each secret
}

// verifyingReceiver verifies every request with webhook.Verify under
// each of the partner's secrets, answers 401 when any fails and code
// otherwise, and records what it saw.
func verifyingReceiver(code int) (http.HandlerFunc, func() []received) {
	var mu sync.Mutex
	var got []received
	h := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{header: r.Header.Clone(), body: string(body)}
		status := code
		for _, secret := range []string{vectorSecret, otherSecret} {
			err := webhook.Verify(secret, r.Header, body, time.Minute)
			rec.errs = append(rec.errs, err)
			if err != nil {
				status = http.StatusUnauthorized
			}
		}
		mu.Lock()
		got = append(got, rec)
		mu.Unlock()
		w.WriteHeader(status)
	}
	return h, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func TestSendVerifiedByReceiver(t *testing.T) {
	h, requests := verifyingReceiver(http.StatusNoContent)
	s, _ := setup(t, h, SenderOptions{})
	d := Delivery{ID: "evt_1", PartnerID: "acme", Body: []byte(testBody)}

	for attempt := 1; attempt <= 2; attempt++ {
		if err := s.Send(context.Background(), d); err != nil {
			t.Fatalf("attempt %d: got %v, want nil", attempt, err)
		}
	}
	got := requests()
	if len(got) != 2 {
		t.Fatalf("got %d requests, want 2", len(got))
	}
	for i, r := range got {
		for j, err := range r.errs {
			if err != nil {
				t.Errorf("request %d, secret %d: Verify got %v, want nil", i, j, err)
			}
		}
		if r.body != testBody {
			t.Errorf("request %d body: got %q, want %q", i, r.body, testBody)
		}
		checks := []struct{ header, want string }{
			{"Content-Type", "application/json"},
			{"User-Agent", userAgent},
			{webhook.HeaderID, d.ID},
		}
		for _, c := range checks {
			if got := r.header.Get(c.header); got != c.want {
				t.Errorf("request %d %s: got %q, want %q", i, c.header, got, c.want)
			}
		}
		if n := len(strings.Fields(r.header.Get(webhook.HeaderSignature))); n != 2 {
			t.Errorf("request %d: got %d signatures, want 2 (one per secret)", i, n)
		}
		if ts, err := strconv.ParseInt(r.header.Get(webhook.HeaderTimestamp), 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Second {
			t.Errorf("request %d webhook-timestamp: got %q, want the send time", i, r.header.Get(webhook.HeaderTimestamp))
		}
	}
	if a, b := got[0].header.Get(webhook.HeaderID), got[1].header.Get(webhook.HeaderID); a != b {
		t.Errorf("webhook-id across attempts: got %q then %q, want identical", a, b)
	}
}

func TestSendTimestampFromClock(t *testing.T) {
	h, requests := verifyingReceiver(http.StatusOK)
	at := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	s, _ := setup(t, h, SenderOptions{Now: func() time.Time { return at }})
	if err := s.Send(context.Background(), Delivery{ID: "evt_2", PartnerID: "acme", Body: []byte(testBody)}); err != nil {
		t.Fatalf("Send: got %v, want nil", err)
	}
	if got, want := requests()[0].header.Get(webhook.HeaderTimestamp), strconv.FormatInt(at.Unix(), 10); got != want {
		t.Errorf("webhook-timestamp: got %s, want %s", got, want)
	}
}

func TestSendPlainHTTPInTestMode(t *testing.T) {
	h, requests := verifyingReceiver(http.StatusOK)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	reg, err := LoadRegistry(writeRegistry(t, `{"partners": {"acme": {"url": "`+srv.URL+`", "secrets": ["`+vectorSecret+`", "`+otherSecret+`"]}}}`), true)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSender(reg, SenderOptions{AllowPrivateNetworks: true})
	if err := s.Send(context.Background(), Delivery{ID: "evt_3", PartnerID: "acme", Body: []byte(testBody)}); err != nil {
		t.Fatalf("Send: got %v, want nil", err)
	}
	if got := requests(); len(got) != 1 || got[0].errs[0] != nil || got[0].errs[1] != nil {
		t.Errorf("got %+v, want one verified request", got)
	}
}

// outcome is how a Send failed.
type outcome int

const (
	ok outcome = iota
	permanent
	transient
)

func (o outcome) String() string { return [...]string{"ok", "permanent", "transient"}[o] }

func classify(err error) outcome {
	switch {
	case err == nil:
		return ok
	case errors.Is(err, asynq.SkipRetry):
		return permanent
	default:
		return transient
	}
}

func TestSendStatusMapping(t *testing.T) {
	tests := []struct {
		code int
		want outcome
	}{
		{200, ok}, {201, ok}, {202, ok}, {204, ok},
		{301, permanent}, {302, permanent}, {307, permanent}, {308, permanent},
		{400, permanent}, {401, permanent}, {403, permanent}, {404, permanent}, {410, permanent}, {413, permanent}, {422, permanent},
		{408, transient}, {409, transient}, {425, transient}, {429, transient},
		{500, transient}, {502, transient}, {503, transient}, {504, transient},
	}
	var code atomic.Int64
	s, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if c := int(code.Load()); c >= 300 && c < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(int(code.Load()))
	}, SenderOptions{})
	for _, tc := range tests {
		code.Store(int64(tc.code))
		err := s.Send(context.Background(), Delivery{ID: "evt_status", PartnerID: "acme", Body: []byte(testBody)})
		if got := classify(err); got != tc.want {
			t.Errorf("status %d: got %s (%v), want %s", tc.code, got, err, tc.want)
			continue
		}
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, "acme") || !strings.Contains(msg, strconv.Itoa(tc.code)) {
				t.Errorf("status %d: got error %q, want it to name the partner and the status", tc.code, msg)
			}
			if strings.Contains(msg, vectorSecret[6:]) || strings.Contains(msg, otherSecret[6:]) {
				t.Errorf("status %d: got error %q, want no secret", tc.code, msg)
			}
			var ra *retry.AfterError
			if errors.As(err, &ra) {
				t.Errorf("status %d without Retry-After: got RetryAfterError %v, want none", tc.code, ra)
			}
		}
	}
}

func TestSendRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		code       int
		retryAfter string
		want       time.Duration // 0: no RetryAfterError
	}{
		{"429 seconds", 429, "30", 30 * time.Second},
		{"503 seconds", 503, "120", 2 * time.Minute},
		{"503 HTTP date", 503, now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"429 date in the past", 429, now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"429 zero", 429, "0", 0},
		{"429 garbage", 429, "soon", 0},
		{"429 negative", 429, "-5", 0},
		{"429 huge is capped", 429, "99999999999999999", retry.MaxAfter},
		{"500 ignores Retry-After", 500, "30", 0},
	}
	var current atomic.Pointer[struct {
		code int
		ra   string
	}]
	s, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		c := current.Load()
		w.Header().Set("Retry-After", c.ra)
		w.WriteHeader(c.code)
	}, SenderOptions{Now: func() time.Time { return now }})
	for _, tc := range tests {
		current.Store(&struct {
			code int
			ra   string
		}{tc.code, tc.retryAfter})
		err := s.Send(context.Background(), Delivery{ID: "evt_ra", PartnerID: "acme", Body: []byte(testBody)})
		if got := classify(err); got != transient {
			t.Errorf("%s: got %s (%v), want transient", tc.name, got, err)
			continue
		}
		var ra *retry.AfterError
		switch isRA := errors.As(err, &ra); {
		case tc.want == 0 && isRA:
			t.Errorf("%s: got RetryAfterError %v, want a plain transient error", tc.name, ra.After)
		case tc.want != 0 && !isRA:
			t.Errorf("%s: got %v, want a *retry.AfterError", tc.name, err)
		case tc.want != 0 && ra.After != tc.want:
			t.Errorf("%s: got After %v, want %v", tc.name, ra.After, tc.want)
		}
		if tc.want != 0 && retry.Delay(0, err) != tc.want {
			t.Errorf("%s: retry.Delay got %v, want %v", tc.name, retry.Delay(0, err), tc.want)
		}
	}
}

func TestSendRedirectNotFollowed(t *testing.T) {
	var followed atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/hooks/escrow", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/moved", http.StatusFound)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
	})
	s, _ := setup(t, mux.ServeHTTP, SenderOptions{})
	err := s.Send(context.Background(), Delivery{ID: "evt_redirect", PartnerID: "acme", Body: []byte(testBody)})
	if got := classify(err); got != permanent {
		t.Errorf("302: got %s (%v), want permanent", got, err)
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("redirect target: got %d requests, want 0", n)
	}
}

func TestSendTimeout(t *testing.T) {
	release := make(chan struct{})
	s, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}, SenderOptions{Timeout: 200 * time.Millisecond})
	defer close(release)
	start := time.Now()
	err := s.Send(context.Background(), Delivery{ID: "evt_slow", PartnerID: "acme", Body: []byte(testBody)})
	elapsed := time.Since(start)
	if got := classify(err); got != transient {
		t.Fatalf("slow receiver: got %s (%v), want transient", got, err)
	}
	// The sender's own 200 ms timeout ended it (a timeout error), not the
	// receiver: it holds the request until the test ends.
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("slow receiver: got %v after %v, want a timeout error from the 200ms timeout", err, elapsed)
	}
	if !strings.Contains(err.Error(), "acme") {
		t.Errorf("got %q, want the partner named", err)
	}
}

func TestSendCapsResponseBody(t *testing.T) {
	var written atomic.Int64
	s, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := make([]byte, 32<<10)
		// An endless answer: stops only when the sender hangs up.
		for r.Context().Err() == nil {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}, SenderOptions{Timeout: 30 * time.Second})
	// Reading the endless body to its end could only stop at the 30 s
	// timeout, with an error: nil means the sender stopped reading by
	// itself, after maxResponseBody.
	err := s.Send(context.Background(), Delivery{ID: "evt_big", PartnerID: "acme", Body: []byte(testBody)})
	if err != nil {
		t.Fatalf("200 with an endless body: got %v, want nil (it stops reading after %d bytes)", err, maxResponseBody)
	}
}

func TestSendPermanentBeforeSending(t *testing.T) {
	var hits atomic.Int64
	s, _ := setup(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }, SenderOptions{})
	tests := []struct {
		name string
		d    Delivery
		want string
	}{
		{"unknown partner", Delivery{ID: "evt_x", PartnerID: "globex", Body: []byte(testBody)}, `unknown partner "globex"`},
		{"empty webhook-id", Delivery{ID: "", PartnerID: "acme", Body: []byte(testBody)}, "invalid webhook-id"},
		{"webhook-id with CRLF", Delivery{ID: "evt\r\nx: y", PartnerID: "acme", Body: []byte(testBody)}, "invalid webhook-id"},
	}
	for _, tc := range tests {
		err := s.Send(context.Background(), tc.d)
		if got := classify(err); got != permanent {
			t.Errorf("%s: got %s (%v), want permanent", tc.name, got, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %q, want it to contain %q", tc.name, err, tc.want)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("receiver: got %d requests, want 0", n)
	}
}

func TestSendCanceledContext(t *testing.T) {
	s, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {}, SenderOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Send(ctx, Delivery{ID: "evt_c", PartnerID: "acme", Body: []byte(testBody)})
	if got := classify(err); got != transient || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: got %s (%v), want transient wrapping context.Canceled", got, err)
	}
}

func TestSendNeverLogsSecrets(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	logger := newTestLogger(&mu, &buf)
	s, _ := setup(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, SenderOptions{Logger: logger})
	_ = s.Send(context.Background(), Delivery{ID: "evt_log", PartnerID: "acme", Body: []byte(testBody)})
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "evt_log") || !strings.Contains(out, "status=500") {
		t.Errorf("log: got %q, want the attempt with webhook_id and status", out)
	}
	for _, secret := range []string{vectorSecret[6:], otherSecret[6:], "released"} {
		if strings.Contains(out, secret) {
			t.Errorf("log: got %q, want neither secrets nor the body (%q)", out, secret)
		}
	}
	if got := fmt.Sprintf("%+v", s); strings.Contains(got, "49 242") {
		t.Errorf("%%+v of a Sender: got %q, want no key bytes", got)
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// newTestLogger logs at debug level, as text, into w.
func newTestLogger(mu *sync.Mutex, w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
