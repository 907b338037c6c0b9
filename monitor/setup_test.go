package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
)

const (
	testToken    = "tok_0123456789abcdef0123456789abcdef"
	testUser     = "ops"
	testPassword = "correct horse battery"
	rawEmail     = "jane.doe@example.com"
	maskedEmail  = "j***@example.com"
)

// fixture is a monitor served on loopback over a private Redis.
type fixture struct {
	url       string
	redisOpt  asynq.RedisConnOpt
	client    *tasks.Client
	inspector *tasks.Inspector
	ledger    deadletter.Ledger
	logs      *peertest.Buffer
}

// setup starts a monitor with all credentials on a fresh Redis; change
// edits the config first. At cleanup it checks that the log never held a
// secret or a raw e-mail address.
func setup(t *testing.T, change ...func(*monitor.Config)) *fixture {
	t.Helper()
	opt, err := asynq.ParseRedisURI(peertest.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	return setupOn(t, opt, change...)
}

func setupOn(t *testing.T, opt asynq.RedisConnOpt, change ...func(*monitor.Config)) *fixture {
	t.Helper()
	logs := &peertest.Buffer{}
	ledger, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dead-letters.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	cfg := monitor.Config{
		RedisOpt: opt, APIToken: testToken, Username: testUser, Password: testPassword, DeadLetters: ledger,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, c := range change {
		c(&cfg)
	}
	m, err := monitor.New(cfg)
	if err != nil {
		t.Fatalf("monitor.New: %v", err)
	}
	srv := httptest.NewServer(m.Handler())
	f := &fixture{url: srv.URL, redisOpt: opt, client: tasks.NewClient(opt), inspector: tasks.NewInspector(opt), ledger: cfg.DeadLetters, logs: logs}
	t.Cleanup(func() {
		srv.Close()
		m.Close()
		f.client.Close()
		f.inspector.Close()
		for _, secret := range []string{testToken, testPassword, rawEmail, "wrong-" + testToken[6:]} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the log holds %q:\n%s", secret, logs.String())
			}
		}
	})
	return f
}

// answer is one HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %s", a.status, err, a.body)
	}
}

// errorShape decodes {"error": {...}}.
type errorShape struct {
	Error struct {
		Code    string                `json:"code"`
		Message string                `json:"message"`
		Fields  []payloads.FieldError `json:"fields"`
	} `json:"error"`
}

func (a answer) apiError(t *testing.T) errorShape {
	t.Helper()
	var e errorShape
	a.json(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("error answer %d lacks code or message: %s", a.status, a.body)
	}
	return e
}

type request struct {
	method, path string
	body         string
	token        string // "" sends no Authorization header
	header       map[string]string
	user, pass   string
	from         string // a loopback source address such as 127.0.2.7; "" lets the system choose
}

func (f *fixture) do(t *testing.T, r request) answer {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, f.url+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.user != "" || r.pass != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	for k, v := range r.header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	client := http.DefaultClient
	if r.from != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(r.from)}}
		client = &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func (f *fixture) api(t *testing.T, method, path, body string) answer {
	t.Helper()
	return f.do(t, request{method: method, path: path, body: body, token: testToken})
}

func releasePayload(tx, email string) string {
	return fmt.Sprintf(`{"transactionId":%q,"recipientEmail":%q,"amount":12500,"currency":"USD"}`, tx, email)
}

func enqueueBody(typ, payload string, extra ...string) string {
	s := fmt.Sprintf(`{"type":%q,"payload":%s`, typ, payload)
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

// enqueue puts a send_release_email job for tx in Redis directly.
func (f *fixture) enqueue(t *testing.T, tx string) string {
	t.Helper()
	task, err := tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: tx, RecipientEmail: rawEmail, Amount: 100, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.client.Enqueue(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// archive fails the jobs permanently (fail), with the recipient's raw
// address in the error.
func (f *fixture) archive(t *testing.T, ids ...string) {
	t.Helper()
	f.fail(t, fmt.Errorf("smtp: mailbox %s refused the message", rawEmail), ids...)
}

// fail runs a real worker (one job at a time, so they fail in the order
// given) whose handler fails every job permanently with cause, until the
// jobs are archived and in the ledger, as in production.
func (f *fixture) fail(t *testing.T, cause error, ids ...string) {
	t.Helper()
	w, err := worker.New(worker.Config{Redis: f.redisOpt, DeadLetters: f.ledger, Concurrency: 1, FetchLoops: 1,
		Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: time.Second},
		asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return fmt.Errorf("%w: %w", cause, asynq.SkipRetry) }))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	for _, id := range ids {
		f.waitState(t, id, "archived")
		escrowtest.Eventually(t, id+" in the ledger", 10*time.Second, func() bool {
			e, err := f.ledger.Get(context.Background(), id)
			return err == nil && e.State == deadletter.StateOpen
		})
	}
}

// grep keeps the lines of s that contain sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (f *fixture) waitState(t *testing.T, id, want string) tasks.Job {
	t.Helper()
	return escrowtest.AwaitState(t, f.inspector, id, want, 10*time.Second)
}
