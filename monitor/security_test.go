package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/hibiken/asynq"
)

// TestEveryAnswerBlocksFramingAndSniffing: the frame-blocking and nosniff
// headers are on every answer, also 401, 403, 404 and 429, where no handler
// behind the guard ran.
func TestEveryAnswerBlocksFramingAndSniffing(t *testing.T) {
	f := setup(t, func(c *monitor.Config) { c.LoginFailures = 2 })
	cases := []struct {
		name string
		req  request
		want int
	}{
		{"UI without credentials", request{method: "GET", path: "/monitor/"}, http.StatusUnauthorized},
		{"UI with a wrong password", request{method: "GET", path: "/monitor/", user: testUser, pass: "wrong password here"}, http.StatusUnauthorized},
		{"API without a token", request{method: "GET", path: "/api/v1/stats"}, http.StatusUnauthorized},
		{"API with a wrong token", request{method: "GET", path: "/api/v1/stats", token: "wrong-" + testToken[6:]}, http.StatusUnauthorized},
		{"throttled client", request{method: "GET", path: "/monitor/", user: testUser, pass: "wrong password here"}, http.StatusTooManyRequests},
		{"unknown route", request{method: "GET", path: "/nope"}, http.StatusNotFound},
		{"health", request{method: "GET", path: "/healthz"}, http.StatusOK},
		{"cross-origin POST", request{method: "POST", path: "/api/v1/jobs", token: testToken, body: "{}", header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, http.StatusForbidden},
	}
	for _, c := range cases {
		a := f.do(t, c.req)
		if a.status != c.want {
			t.Errorf("%s: got %d, want %d", c.name, a.status, c.want)
		}
		for h, want := range map[string]string{
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": "frame-ancestors 'none'",
			"X-Content-Type-Options":  "nosniff",
		} {
			if got := a.header.Get(h); !strings.Contains(got, want) {
				t.Errorf("%s (%d): got %s %q, want %q", c.name, a.status, h, got, want)
			}
		}
	}
}

// TestNewRefusesWeakSecrets: whitespace-only, padded and short secrets are
// refused at start-up, in loopback mode too, naming the variable and never
// repeating the secret.
func TestNewRefusesWeakSecrets(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}
	for _, c := range []struct {
		name   string
		cfg    monitor.Config
		want   string
		secret string
	}{
		{"one-character password", monitor.Config{RedisOpt: opt, Username: "ops", Password: "x", APIToken: testToken}, "MONITOR_PASSWORD", ""},
		{"whitespace-only password", monitor.Config{RedisOpt: opt, Username: "ops", Password: strings.Repeat(" ", 20), APIToken: testToken}, "MONITOR_PASSWORD", ""},
		{"tabs-only password", monitor.Config{RedisOpt: opt, Username: "ops", Password: strings.Repeat("\t", 20), APIToken: testToken}, "MONITOR_PASSWORD", ""},
		{"padded password", monitor.Config{RedisOpt: opt, Username: "ops", Password: " Tr0ub4dor&3xyz ", APIToken: testToken}, "MONITOR_PASSWORD", "Tr0ub4dor"},
		{"11 characters of password", monitor.Config{RedisOpt: opt, Username: "ops", Password: "Zyxwvutsrqp", APIToken: testToken}, "MONITOR_PASSWORD", "Zyxwvutsrqp"},
		{"12 bytes but 4 characters", monitor.Config{RedisOpt: opt, Username: "ops", Password: "密码密码", APIToken: testToken}, "MONITOR_PASSWORD", "密码"},
		{"whitespace-only user", monitor.Config{RedisOpt: opt, Username: "   ", Password: testPassword, APIToken: testToken}, "MONITOR_USERNAME", ""},
		{"one-character token", monitor.Config{RedisOpt: opt, Username: "ops", Password: testPassword, APIToken: "x"}, "JOB_PROCESSOR_SECRET_TOKEN", ""},
		{"whitespace-only token", monitor.Config{RedisOpt: opt, Username: "ops", Password: testPassword, APIToken: strings.Repeat(" ", 40)}, "JOB_PROCESSOR_SECRET_TOKEN", ""},
		{"padded token", monitor.Config{RedisOpt: opt, Username: "ops", Password: testPassword, APIToken: " " + testToken}, "JOB_PROCESSOR_SECRET_TOKEN", testToken},
		{"one-character token in loopback mode", monitor.Config{RedisOpt: opt, LoopbackNoAuth: true, APIToken: "x"}, "JOB_PROCESSOR_SECRET_TOKEN", ""},
		{"whitespace token in loopback mode", monitor.Config{RedisOpt: opt, LoopbackNoAuth: true, APIToken: "\t"}, "JOB_PROCESSOR_SECRET_TOKEN", ""},
		{"one-character password in loopback mode", monitor.Config{RedisOpt: opt, LoopbackNoAuth: true, Username: "ops", Password: "x"}, "MONITOR_PASSWORD", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := monitor.New(c.cfg)
			if err == nil {
				m.Close()
				t.Fatalf("got a monitor, want an error naming %s", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %q, want it to name %s", err, c.want)
			}
			if c.secret != "" && strings.Contains(err.Error(), c.secret) {
				t.Errorf("got %q, want the secret left out", err)
			}
		})
	}
}

// TestFailedLoginsAreThrottledPerClient: after LoginFailures wrong
// credentials from one client in a window, that client gets 429 with
// Retry-After, even with the right credentials, on the UI and the API;
// another client still logs in.
func TestFailedLoginsAreThrottledPerClient(t *testing.T) {
	const n = 5
	f := setup(t, func(c *monitor.Config) { c.LoginFailures = n })
	from := func(ip string, r request) request {
		r.from = ip
		return r
	}
	badUI := request{method: "GET", path: "/monitor/", user: testUser, pass: "wrong password here"}
	for i := 1; i <= n; i++ {
		if a := f.do(t, from("127.0.2.7", badUI)); a.status != http.StatusUnauthorized {
			t.Fatalf("bad attempt %d: got %d, want 401", i, a.status)
		}
	}
	for _, r := range []request{
		badUI,
		{method: "GET", path: "/monitor/", user: testUser, pass: testPassword},
		{method: "GET", path: "/api/v1/stats", token: testToken},
		{method: "GET", path: "/api/v1/stats", token: "wrong-" + testToken[6:]},
	} {
		a := f.do(t, from("127.0.2.7", r))
		if a.status != http.StatusTooManyRequests {
			t.Errorf("%s %s after %d failures: got %d, want 429", r.method, r.path, n, a.status)
			continue
		}
		if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
			t.Errorf("429: got Retry-After %q, want 1 to 60 seconds", a.header.Get("Retry-After"))
		}
		if e := a.apiError(t); e.Error.Code != "too_many_requests" {
			t.Errorf("429: got code %q, want too_many_requests", e.Error.Code)
		}
	}
	for _, r := range []request{
		{method: "GET", path: "/monitor/", user: testUser, pass: testPassword},
		{method: "GET", path: "/api/v1/stats", token: testToken},
	} {
		if a := f.do(t, from("127.0.3.9", r)); a.status != http.StatusOK {
			t.Errorf("another client, %s: got %d, want 200", r.path, a.status)
		}
	}
	// A browser's first request without credentials is not a failed login.
	for i := 0; i < 3*n; i++ {
		if a := f.do(t, from("127.0.4.5", request{method: "GET", path: "/monitor/"})); a.status != http.StatusUnauthorized {
			t.Fatalf("request %d without credentials: got %d, want 401", i, a.status)
		}
	}
	if a := f.do(t, from("127.0.4.5", request{method: "GET", path: "/monitor/", user: testUser, pass: testPassword})); a.status != http.StatusOK {
		t.Errorf("after requests without credentials: got %d, want 200", a.status)
	}
}

// TestFailedLoginLogIsBounded: a client hammering wrong passwords, and
// many clients failing once each, leave a bounded number of log lines, and
// the count reaches /metrics.
func TestFailedLoginLogIsBounded(t *testing.T) {
	f := setup(t, func(c *monitor.Config) { c.LoginFailures = 1000 })
	bad := func(ip string) request {
		return request{method: "GET", path: "/api/v1/stats", token: "wrong-" + testToken[6:], from: ip}
	}
	for i := 0; i < 300; i++ {
		f.do(t, bad("127.0.2.7"))
	}
	if got := linesAtLeast(f.logs.String(), "WARN"); got != 1 {
		t.Errorf("300 failures of one client: got %d warning lines, want 1 per window", got)
	}
	for i := 0; i < 300; i++ {
		f.do(t, bad(fmt.Sprintf("127.9.%d.%d", i/250, 1+i%250)))
	}
	if got, want := linesAtLeast(f.logs.String(), "WARN"), monitor.MaxLoginFailureLines+1; got != want {
		t.Errorf("300 clients failing once each: got %d warning lines, want %d (the budget of a window and one line saying the rest are dropped)", got, want)
	}
	// A throttled client hammering on: its 429s add no line above debug.
	g := setup(t, func(c *monitor.Config) { c.LoginFailures = 3 })
	for i := 0; i < 300; i++ {
		g.do(t, bad("127.0.5.5"))
	}
	if got := linesAtLeast(g.logs.String(), "INFO"); got != 2 {
		t.Errorf("300 wrong tokens from one client, throttled after 3: got %d lines at info or above, want 2 (the failed login, the throttling):\n%s", got, g.logs.String())
	}
	a := f.do(t, request{method: "GET", path: "/metrics"})
	if !strings.Contains(string(a.body), `escrowjobs_monitor_login_failures_total{surface="api"} 600`) {
		t.Errorf("got metrics without escrowjobs_monitor_login_failures_total{surface=\"api\"} 600:\n%s", grep(string(a.body), "login"))
	}
}

// linesAtLeast counts the log lines at level or above.
func linesAtLeast(logs, level string) int {
	rank := map[string]int{"DEBUG": 0, "INFO": 1, "WARN": 2, "ERROR": 3}
	n := 0
	for _, l := range strings.Split(logs, "\n") {
		var rec struct{ Level string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Level != "" && rank[rec.Level] >= rank[level] {
			n++
		}
	}
	return n
}

// TestHugeFieldNameIsNotEchoed: a 60 KB unknown field name in the payload
// gets a small 400 answer (it was 120 KB: the name twice).
func TestHugeFieldNameIsNotEchoed(t *testing.T) {
	f := setup(t)
	huge := strings.Repeat("x", 60<<10)
	payload := `{"transactionId":"t","recipientEmail":"a@example.com","amount":1,"currency":"USD","` + huge + `":1}`
	a := f.api(t, "POST", "/api/v1/jobs", enqueueBody("send_release_email", payload))
	if a.status != http.StatusBadRequest {
		t.Fatalf("got %d, want 400: %.300s", a.status, a.body)
	}
	if len(a.body) > 1024 {
		t.Errorf("60 KB field name: got a 400 answer of %d bytes, want at most 1024", len(a.body))
	}
	e := a.apiError(t)
	if len(e.Error.Fields) != 1 || e.Error.Fields[0].Field != strings.Repeat("x", 64)+"…" {
		t.Errorf("got fields %.300v, want the one field named by its first 64 characters and …", e.Error.Fields)
	}
	t.Logf("60 KB field name → 400 answer of %d bytes", len(a.body))
}

// TestAPIRejectsBidiOverrides: a reason or recipient name carrying a bidi
// override (U+202E) or another invisible character is a 400 naming the
// field; nothing is enqueued.
func TestAPIRejectsBidiOverrides(t *testing.T) {
	f := setup(t)
	for _, c := range []struct{ typ, payload, field string }{
		{"send_refund_email", `{"transactionId":"esc-b1","recipientEmail":"a@example.com","amount":1,"currency":"USD","reason":"refund of invoice \u202Efdp.exe"}`, "reason"},
		{"send_dispute_email", `{"transactionId":"esc-b2","disputeId":"d-1","recipientEmail":"a@example.com","reason":"item \u2066never\u2069 arrived"}`, "reason"},
		{"send_release_email", `{"transactionId":"esc-b3","recipientEmail":"a@example.com","amount":1,"currency":"USD","recipientName":"Jane\u200BDoe"}`, "recipientName"},
	} {
		a := f.api(t, "POST", "/api/v1/jobs", enqueueBody(c.typ, c.payload))
		if a.status != http.StatusBadRequest {
			t.Errorf("%s: got %d, want 400: %s", c.typ, a.status, a.body)
			continue
		}
		if e := a.apiError(t); len(e.Error.Fields) != 1 || e.Error.Fields[0].Field != c.field {
			t.Errorf("%s: got fields %+v, want one bad field %s", c.typ, e.Error.Fields, c.field)
		}
	}
	st, err := f.inspector.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range st {
		if q.Pending != 0 {
			t.Errorf("queue %+v: got %d pending, want nothing enqueued", q, q.Pending)
		}
	}
}
