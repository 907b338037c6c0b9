package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/internal/testenv"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/payloads"
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
	logs      *testenv.Buffer
}

// setup starts a monitor with all credentials on a fresh Redis; change
// edits the config first. At cleanup it checks that the log never held a
// secret or a raw e-mail address.
func setup(t *testing.T, change ...func(*monitor.Config)) *fixture {
	t.Helper()
	opt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	return setupOn(t, opt, change...)
}

func setupOn(t *testing.T, opt asynq.RedisConnOpt, change ...func(*monitor.Config)) *fixture {
	t.Helper()
	logs := &testenv.Buffer{}
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
	resp, err := http.DefaultClient.Do(req)
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

// archive runs a real worker (one job at a time, so they fail in the order
// given) whose handler fails every job permanently, with the recipient's
// raw address in the error, until the jobs are archived and in the ledger.
func (f *fixture) archive(t *testing.T, ids ...string) {
	t.Helper()
	w, err := worker.New(worker.Config{Redis: f.redisOpt, DeadLetters: f.ledger, Concurrency: 1, FetchLoops: 1,
		Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: time.Second},
		asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			return fmt.Errorf("smtp: mailbox %s refused the message: %w", rawEmail, asynq.SkipRetry)
		}))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	for _, id := range ids {
		f.waitState(t, id, "archived")
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if e, err := f.ledger.Get(context.Background(), id); err == nil && e.State == deadletter.StateOpen {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is not in the ledger", id)
			}
		}
	}
}

func (f *fixture) waitState(t *testing.T, id, want string) tasks.Job {
	t.Helper()
	var j tasks.Job
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if j, err = f.inspector.Status(id); err == nil && j.State == want {
			return j
		}
	}
	t.Fatalf("job %s: got state %q (err %v), want %s", id, j.State, err, want)
	return j
}

func TestAPIRefusesMissingOrWrongToken(t *testing.T) {
	f := setup(t)
	id := f.enqueue(t, "esc-auth")
	routes := []struct{ method, path, body string }{
		{"POST", "/api/v1/jobs", enqueueBody("send_release_email", releasePayload("esc-auth-2", rawEmail))},
		{"GET", "/api/v1/jobs/" + id, ""},
		{"GET", "/api/v1/stats", ""},
		{"GET", "/api/v1/dead-letters?limit=5", ""},
		{"POST", "/api/v1/dead-letters/" + id + "/requeue", ""},
		{"GET", "/api/v1/nonexistent", ""},
	}
	lastByte := testToken[:len(testToken)-1] + string(testToken[len(testToken)-1]^1)
	creds := []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"wrong token", "Bearer wrong-" + testToken[6:]},
		{"last byte differs", "Bearer " + lastByte},
		{"token prefix", "Bearer " + testToken[:len(testToken)-1]},
		{"token plus a byte", "Bearer " + testToken + "x"},
		{"basic scheme", "Basic " + testToken},
		{"empty bearer", "Bearer "},
	}
	for _, r := range routes {
		for _, c := range creds {
			t.Run(r.method+" "+r.path+"/"+c.name, func(t *testing.T) {
				req := request{method: r.method, path: r.path, body: r.body}
				if c.header != "" {
					req.header = map[string]string{"Authorization": c.header}
				}
				a := f.do(t, req)
				if a.status != http.StatusUnauthorized {
					t.Fatalf("got %d, want 401: %s", a.status, a.body)
				}
				if e := a.apiError(t); e.Error.Code != "unauthorized" {
					t.Errorf("got code %q, want unauthorized", e.Error.Code)
				}
				if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("got WWW-Authenticate %q, want Bearer …", got)
				}
			})
		}
	}
	// Nothing was enqueued or requeued by the refused requests.
	if _, err := f.inspector.Status("send_release_email:escrow-esc-auth-2-release-" + payloads.RecipientHash(rawEmail)); !errors.Is(err, tasks.ErrNotFound) {
		t.Errorf("a refused enqueue left a job: %v", err)
	}
}

func TestEnqueue(t *testing.T) {
	f := setup(t)
	body := enqueueBody("send_release_email", releasePayload("esc-100", rawEmail))
	a := f.api(t, "POST", "/api/v1/jobs", body)
	if a.status != http.StatusCreated {
		t.Fatalf("got %d, want 201: %s", a.status, a.body)
	}
	var created struct {
		ID        string `json:"id"`
		Duplicate *bool  `json:"duplicate"`
	}
	a.json(t, &created)
	wantID := "send_release_email:escrow-esc-100-release-" + payloads.RecipientHash(rawEmail)
	if created.ID != wantID || created.Duplicate != nil {
		t.Errorf("got %s, want {\"id\": %q}", a.body, wantID)
	}
	if got := a.header.Get("Location"); got != "/api/v1/jobs/"+wantID {
		t.Errorf("got Location %q, want /api/v1/jobs/%s", got, wantID)
	}
	if j := f.waitState(t, wantID, "pending"); j.Queue != "default" || j.MaxRetry != 3 {
		t.Errorf("got queue %q maxRetry %d, want default 3", j.Queue, j.MaxRetry)
	}

	t.Run("duplicate answers 200 with the existing id", func(t *testing.T) {
		a := f.api(t, "POST", "/api/v1/jobs", body)
		var dup struct {
			ID        string `json:"id"`
			Duplicate bool   `json:"duplicate"`
		}
		a.json(t, &dup)
		if a.status != http.StatusOK || dup.ID != wantID || !dup.Duplicate {
			t.Errorf("got %d %s, want 200 {\"id\": %q, \"duplicate\": true}", a.status, a.body, wantID)
		}
	})

	t.Run("dedupeKey and processIn", func(t *testing.T) {
		for _, c := range []struct {
			name, extra, wantID string
			wantDelay           time.Duration
		}{
			{"duration string", `"dedupeKey":"escrow-esc-101-release","processIn":"10s"`, "send_release_email:escrow-esc-101-release", 10 * time.Second},
			{"seconds number", `"dedupeKey":"escrow-esc-102-release","processIn":90`, "send_release_email:escrow-esc-102-release", 90 * time.Second},
			{"fractional seconds", `"dedupeKey":"escrow-esc-103-release","processIn":2.5`, "send_release_email:escrow-esc-103-release", 2500 * time.Millisecond},
		} {
			t.Run(c.name, func(t *testing.T) {
				start := time.Now()
				a := f.api(t, "POST", "/api/v1/jobs", enqueueBody("send_release_email", releasePayload("esc-10x", rawEmail), c.extra))
				if a.status != http.StatusCreated {
					t.Fatalf("got %d, want 201: %s", a.status, a.body)
				}
				j := f.waitState(t, c.wantID, "scheduled")
				if j.NextProcessAt == nil {
					t.Fatal("got no nextProcessAt for a delayed job")
				}
				if d := j.NextProcessAt.Sub(start); d < c.wantDelay-time.Second || d > c.wantDelay+2*time.Second {
					t.Errorf("got nextProcessAt %s after the request, want about %s", d, c.wantDelay)
				}
			})
		}
	})

	t.Run("the queue of the type", func(t *testing.T) {
		a := f.api(t, "POST", "/api/v1/jobs", enqueueBody("stripe_capture_payment", `{"transactionId":"esc-7","paymentIntentId":"pi_123"}`))
		if a.status != http.StatusCreated {
			t.Fatalf("got %d, want 201: %s", a.status, a.body)
		}
		if j := f.waitState(t, "stripe_capture_payment:capture-pi_123", "pending"); j.Queue != "critical" {
			t.Errorf("got queue %q, want critical", j.Queue)
		}
	})
}

func TestEnqueueRejects(t *testing.T) {
	f := setup(t)
	cases := []struct {
		name       string
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string
		wantFields []string
	}{
		{"bad e-mail", enqueueBody("send_release_email", releasePayload("esc-1", "jane.doe@@example")), nil, 400, "invalid_payload", []string{"recipientEmail"}},
		{"every bad field", enqueueBody("send_release_email", `{"transactionId":"bad id!","recipientEmail":"nope","amount":0,"currency":"usd"}`), nil, 400, "invalid_payload",
			[]string{"transactionId", "recipientEmail", "amount", "currency"}},
		{"unknown payload field", enqueueBody("send_release_email", `{"transactionId":"esc-1","recipientEmail":"a@example.com","amount":1,"currency":"USD","cc":"x"}`), nil, 400, "invalid_payload", []string{"cc"}},
		{"payload not an object", enqueueBody("send_release_email", `"hello"`), nil, 400, "invalid_payload", []string{"payload"}},
		{"unknown type", enqueueBody("send_fax", `{}`), nil, 400, "unknown_type", []string{"type"}},
		{"missing type and payload", `{}`, nil, 400, "invalid_payload", []string{"type", "payload"}},
		{"null payload", `{"type":"send_release_email","payload":null}`, nil, 400, "invalid_payload", []string{"payload"}},
		{"negative processIn", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"processIn":"-5s"`), nil, 400, "invalid_payload", []string{"processIn"}},
		{"negative seconds", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"processIn":-1`), nil, 400, "invalid_payload", []string{"processIn"}},
		{"hugely negative seconds", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"processIn":-1e300`), nil, 400, "invalid_payload", []string{"processIn"}},
		{"processIn not a duration", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"processIn":"soon"`), nil, 400, "invalid_payload", []string{"processIn"}},
		{"processIn too long", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"processIn":1e300`), nil, 400, "invalid_payload", []string{"processIn"}},
		{"bad dedupe key", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"dedupeKey":"has spaces/and slashes"`), nil, 400, "invalid_payload", []string{"dedupeKey"}},
		{"unknown request field", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"queue":"critical"`), nil, 400, "invalid_request", []string{"queue"}},
		{"type not a string", `{"type":7,"payload":{}}`, nil, 400, "invalid_request", []string{"type"}},
		{"not JSON", `{"type":`, nil, 400, "invalid_request", []string{"body"}},
		{"trailing data", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail)) + `{}`, nil, 400, "invalid_request", []string{"body"}},
		{"form content type", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail)), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", nil},
		{"body over 64 KiB", enqueueBody("audit_log_created", `{"pad":"`+strings.Repeat("x", monitor.MaxBodyBytes)+`"}`), nil, 413, "payload_too_large", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := f.do(t, request{method: "POST", path: "/api/v1/jobs", body: c.body, token: testToken, header: c.header})
			if a.status != c.wantStatus {
				t.Fatalf("got %d, want %d: %s", a.status, c.wantStatus, a.body)
			}
			e := a.apiError(t)
			if e.Error.Code != c.wantCode {
				t.Errorf("got code %q, want %q: %s", e.Error.Code, c.wantCode, a.body)
			}
			var got []string
			for _, fe := range e.Error.Fields {
				got = append(got, fe.Field)
				if fe.Message == "" {
					t.Errorf("field %s has no message", fe.Field)
				}
			}
			for _, w := range c.wantFields {
				if !strings.Contains(","+strings.Join(got, ",")+",", ","+w+",") {
					t.Errorf("got fields %v, want %s among them: %s", got, w, a.body)
				}
			}
			if strings.Contains(string(a.body), "jane.doe") {
				t.Errorf("the answer repeats the e-mail address: %s", a.body)
			}
		})
	}
	if qs, err := f.inspector.Stats(); err != nil {
		t.Fatal(err)
	} else {
		for _, q := range qs {
			if q.Size != 0 {
				t.Errorf("queue %s holds %d jobs after only bad requests, want 0", q.Queue, q.Size)
			}
		}
	}
}

func TestJobStatus(t *testing.T) {
	f := setup(t)
	id := f.enqueue(t, "esc-200")
	a := f.api(t, "GET", "/api/v1/jobs/"+id, "")
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200: %s", a.status, a.body)
	}
	var j tasks.Job
	a.json(t, &j)
	if j.ID != id || j.State != "pending" || j.Type != "send_release_email" || j.Queue != "default" || j.Attempts != 0 || j.MaxRetry != 3 || j.NextProcessAt == nil {
		t.Errorf("got %+v, want %s pending send_release_email on default, 0 attempts, maxRetry 3, a nextProcessAt", j, id)
	}
	if !strings.Contains(string(a.body), maskedEmail) || strings.Contains(string(a.body), rawEmail) {
		t.Errorf("got %s, want the payload's e-mail masked as %s", a.body, maskedEmail)
	}
	for _, key := range []string{`"state"`, `"type"`, `"queue"`, `"attempts"`, `"maxRetry"`, `"nextProcessAt"`} {
		if !strings.Contains(string(a.body), key) {
			t.Errorf("the answer lacks %s: %s", key, a.body)
		}
	}

	for _, path := range []string{"/api/v1/jobs/send_release_email:nope", "/api/v1/jobs/" + strings.Repeat("x", 400), "/api/v1/jobs/jane.doe@example.com"} {
		a := f.api(t, "GET", path, "")
		if a.status != http.StatusNotFound || a.apiError(t).Error.Code != "not_found" {
			t.Errorf("GET %.60s: got %d %s, want 404 not_found", path, a.status, a.body)
		}
		if strings.Contains(string(a.body), rawEmail) {
			t.Errorf("the 404 repeats the raw address: %s", a.body)
		}
	}
	if a := f.api(t, "DELETE", "/api/v1/jobs/"+id, ""); a.status != http.StatusMethodNotAllowed || a.apiError(t).Error.Code != "method_not_allowed" {
		t.Errorf("DELETE: got %d %s, want 405 method_not_allowed", a.status, a.body)
	}
}

func TestStats(t *testing.T) {
	f := setup(t)
	f.enqueue(t, "esc-300")
	f.enqueue(t, "esc-301")
	a := f.api(t, "GET", "/api/v1/stats", "")
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200: %s", a.status, a.body)
	}
	var qs []tasks.QueueStats
	a.json(t, &qs)
	got := map[string]tasks.QueueStats{}
	for _, q := range qs {
		got[q.Queue] = q
	}
	for _, q := range []string{"critical", "default", "low"} {
		if _, ok := got[q]; !ok {
			t.Errorf("got queues %v, want %s among them", qs, q)
		}
	}
	if got["default"].Pending != 2 {
		t.Errorf("got default pending %d, want 2", got["default"].Pending)
	}
}

func TestUnknownRoutesAreJSON404(t *testing.T) {
	f := setup(t)
	for _, r := range []request{
		{method: "GET", path: "/nope"},
		{method: "GET", path: "/api/v2/jobs", token: testToken},
		{method: "POST", path: "/api/v1/jobs/x/y/z", token: testToken},
	} {
		a := f.do(t, r)
		if a.status != http.StatusNotFound || a.apiError(t).Error.Code != "not_found" {
			t.Errorf("%s %s: got %d %s, want a JSON 404", r.method, r.path, a.status, a.body)
		}
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s: got Content-Type %q, want application/json", r.method, r.path, ct)
		}
	}
}

func TestHealthz(t *testing.T) {
	rs := testenv.StartRedis(t)
	opt, err := asynq.ParseRedisURI(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	f := setupOn(t, opt)
	a := f.do(t, request{method: "GET", path: "/healthz"})
	if a.status != http.StatusOK || strings.TrimSpace(string(a.body)) != `{"status":"ok"}` {
		t.Errorf("got %d %s, want 200 {\"status\":\"ok\"}", a.status, a.body)
	}
	rs.Kill()
	start := time.Now()
	a = f.do(t, request{method: "GET", path: "/healthz"})
	if a.status != http.StatusServiceUnavailable {
		t.Errorf("Redis down: got %d %s, want 503", a.status, a.body)
	}
	var h struct {
		Status string `json:"status"`
	}
	a.json(t, &h)
	if h.Status == "ok" || a.apiError(t).Error.Code != "unavailable" {
		t.Errorf("Redis down: got %s, want a status other than ok and the error shape", a.body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Redis down: the answer took %s, want under 3 s", d)
	}
}

func TestMetrics(t *testing.T) {
	f := setup(t)
	f.enqueue(t, "esc-600")
	a := f.do(t, request{method: "GET", path: "/metrics"})
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200", a.status)
	}
	for _, want := range []string{
		`asynq_tasks_enqueued_total{queue="default",state="pending"} 1`,
		`asynq_queue_size{queue="default"} 1`,
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(string(a.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("got Content-Type %q, want Prometheus text", ct)
	}
}

func TestNewRefusesWithoutCredentials(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}
	cases := []struct {
		name    string
		cfg     monitor.Config
		want    []string
		wantNot []string
	}{
		{"nothing", monitor.Config{RedisOpt: opt}, []string{"MONITOR_USERNAME", "MONITOR_PASSWORD", "JOB_PROCESSOR_SECRET_TOKEN", "loopback"}, nil},
		{"no token", monitor.Config{RedisOpt: opt, Username: "ops", Password: testPassword}, []string{"JOB_PROCESSOR_SECRET_TOKEN"}, []string{"MONITOR_USERNAME", "MONITOR_PASSWORD"}},
		{"short token", monitor.Config{RedisOpt: opt, Username: "ops", Password: testPassword, APIToken: "hunter2hunter2"}, []string{"JOB_PROCESSOR_SECRET_TOKEN", "32"}, []string{"hunter2"}},
		{"no password", monitor.Config{RedisOpt: opt, Username: "ops", APIToken: testToken}, []string{"MONITOR_PASSWORD"}, []string{"MONITOR_USERNAME", "JOB_PROCESSOR_SECRET_TOKEN"}},
		{"short password", monitor.Config{RedisOpt: opt, Username: "ops", Password: "pw123", APIToken: testToken}, []string{"MONITOR_PASSWORD"}, []string{"pw123"}},
		{"no username", monitor.Config{RedisOpt: opt, Password: testPassword, APIToken: testToken}, []string{"MONITOR_USERNAME"}, nil},
		{"half the credentials in loopback mode", monitor.Config{RedisOpt: opt, Username: "ops", LoopbackNoAuth: true}, []string{"MONITOR_PASSWORD"}, nil},
		{"no Redis", monitor.Config{Username: "ops", Password: testPassword, APIToken: testToken}, []string{"REDIS_URL"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := monitor.New(c.cfg)
			if err == nil {
				m.Close()
				t.Fatal("got a monitor, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to name %s", err, w)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want no %q in it", err, w)
				}
			}
		})
	}
	for _, cfg := range []monitor.Config{
		{RedisOpt: opt, LoopbackNoAuth: true},
		{RedisOpt: opt, LoopbackNoAuth: true, APIToken: "short-but-loopback"},
		{RedisOpt: opt, Username: "ops", Password: testPassword, APIToken: testToken},
	} {
		m, err := monitor.New(cfg)
		if err != nil {
			t.Errorf("New(%+v): %v, want a monitor", cfg, err)
			continue
		}
		m.Close()
	}
}

func TestUIBasicAuth(t *testing.T) {
	f := setup(t)
	id := f.enqueue(t, "esc-700")
	f.archive(t, id)
	lastByte := testPassword[:len(testPassword)-1] + string(testPassword[len(testPassword)-1]^1)
	for _, c := range []struct{ name, user, pass string }{
		{"no credentials", "", ""},
		{"wrong password", testUser, "wrong password here"},
		{"password differs in the last byte", testUser, lastByte},
		{"wrong user", "admin", testPassword},
		{"empty password", testUser, ""},
	} {
		for _, path := range []string{"/monitor/", "/monitor/api/queues", "/monitor/queues/default"} {
			a := f.do(t, request{method: "GET", path: path, user: c.user, pass: c.pass})
			if a.status != http.StatusUnauthorized {
				t.Errorf("%s %s: got %d, want 401", c.name, path, a.status)
			}
			if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
				t.Errorf("%s %s: got WWW-Authenticate %q, want Basic …", c.name, path, got)
			}
		}
	}
	a := f.do(t, request{method: "GET", path: "/monitor/", user: testUser, pass: testPassword})
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `window.FLAG_ROOT_PATH="\/monitor"`) {
		t.Errorf("got %d, want asynqmon's page rooted at /monitor: %.300s", a.status, a.body)
	}
	if got := a.header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("got X-Frame-Options %q, want DENY", got)
	}
	// asynqmon's own API: payload (formatter) and error message (answer
	// pass) are masked.
	a = f.do(t, request{method: "GET", path: "/monitor/api/queues/default/archived_tasks", user: testUser, pass: testPassword})
	if a.status != http.StatusOK {
		t.Fatalf("archived_tasks: got %d %s", a.status, a.body)
	}
	var list struct {
		Tasks []struct {
			ID, Payload  string
			ErrorMessage string `json:"error_message"`
		} `json:"tasks"`
	}
	a.json(t, &list)
	if len(list.Tasks) != 1 || list.Tasks[0].ID != id || !strings.Contains(list.Tasks[0].Payload, maskedEmail) || !strings.Contains(list.Tasks[0].ErrorMessage, maskedEmail) {
		t.Errorf("got %s, want job %s with payload and error masked as %s", a.body, id, maskedEmail)
	}
	if strings.Contains(string(a.body), rawEmail) {
		t.Errorf("asynqmon's API shows the raw address: %s", a.body)
	}
}

func TestUIMutations(t *testing.T) {
	basic := func(path string) request {
		return request{method: "POST", path: path, user: testUser, pass: testPassword}
	}
	t.Run("read-only mode refuses them", func(t *testing.T) {
		f := setup(t, func(c *monitor.Config) { c.ReadOnly = true })
		id := f.enqueue(t, "esc-800")
		for _, r := range []request{
			basic("/monitor/api/queues/default:pause"),
			{method: "DELETE", path: "/monitor/api/queues/default/pending_tasks/" + id, user: testUser, pass: testPassword},
			{method: "DELETE", path: "/monitor/api/queues/default", user: testUser, pass: testPassword},
			basic("/monitor/api/queues/default/pending_tasks/" + id + ":archive"),
			basic("/monitor/api/queues/default/archived_tasks:run_all"),
		} {
			a := f.do(t, r)
			if a.status != http.StatusMethodNotAllowed || a.apiError(t).Error.Code != "read_only" {
				t.Errorf("%s %s: got %d %s, want 405 read_only", r.method, r.path, a.status, a.body)
			}
		}
		if j, _ := f.inspector.Status(id); j.State != "pending" {
			t.Errorf("got state %q, want the job untouched (pending)", j.State)
		}
		if qs, _ := f.inspector.Stats(); len(qs) == 0 || qs[1].Paused {
			t.Errorf("got %+v, want default not paused", qs)
		}
		a := f.do(t, request{method: "GET", path: "/monitor/", user: testUser, pass: testPassword})
		if a.status != http.StatusOK || !strings.Contains(string(a.body), `window.FLAG_READ_ONLY="true"`) {
			t.Errorf("got %d, want the UI told it is read-only", a.status)
		}
	})
	t.Run("they work otherwise, from the same origin only", func(t *testing.T) {
		f := setup(t)
		f.enqueue(t, "esc-801")
		cross := basic("/monitor/api/queues/default:pause")
		cross.header = map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
		if a := f.do(t, cross); a.status != http.StatusForbidden {
			t.Errorf("cross-site pause: got %d %s, want 403", a.status, a.body)
		}
		if qs, _ := f.inspector.Stats(); qs[1].Paused {
			t.Error("a cross-site request paused the queue")
		}
		same := basic("/monitor/api/queues/default:pause")
		same.header = map[string]string{"Sec-Fetch-Site": "same-origin"}
		if a := f.do(t, same); a.status >= 300 {
			t.Errorf("pause: got %d %s, want success", a.status, a.body)
		}
		if qs, _ := f.inspector.Stats(); !qs[1].Paused {
			t.Error("got default not paused, want paused")
		}
	})
}

func TestLoopbackNoAuth(t *testing.T) {
	f := setup(t, func(c *monitor.Config) { c.Username, c.Password, c.APIToken, c.LoopbackNoAuth = "", "", "", true })
	f.enqueue(t, "esc-900")
	for _, path := range []string{"/monitor/", "/api/v1/stats", "/healthz"} {
		if a := f.do(t, request{method: "GET", path: path}); a.status != http.StatusOK {
			t.Errorf("GET %s from loopback without credentials: got %d %s, want 200", path, a.status, a.body)
		}
	}
	// A DNS-rebinding page reaches 127.0.0.1 with its own Host.
	a := f.do(t, request{method: "GET", path: "/api/v1/stats", header: map[string]string{"Host": "evil.example"}})
	if a.status != http.StatusForbidden || a.apiError(t).Error.Code != "forbidden" {
		t.Errorf("foreign Host: got %d %s, want 403 forbidden", a.status, a.body)
	}

	m, err := monitor.New(monitor.Config{RedisOpt: f.redisOpt, LoopbackNoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://127.0.0.1/api/v1/stats", nil)
	req.RemoteAddr = "203.0.113.9:40000"
	m.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("request from 203.0.113.9: got %d, want 403", rec.Code)
	}
}
