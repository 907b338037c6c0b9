package main

// End-to-end: this service in-process, the real cmd/server binary running
// the outbox relay and the production adapters, real PostgreSQL, Redis,
// mailpit, the stateful Stripe of escrowtest (every request checked by
// stripe-mock first) and escrowtest's verifying webhook receiver. Each effect is counted where it lands, and each job's runs are
// counted from the server's "job done" lines.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
)

const (
	e2eStripeKey  = "sk_test_outboxSecretKeyDoNotLog"
	e2eWebhookKey = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	e2ePartner    = "acme"
)

// stack is one test's peers, database and binaries.
type stack struct {
	dbURL    string
	redis    *peertest.RedisServer
	mail     *peertest.Mailpit
	stripe   *escrowtest.Stripe
	hooks    *escrowtest.Receiver
	bin      string
	dir      string
	registry string
	api      string // base URL of this service
	apiOut   *peertest.Buffer
	servers  []*peertest.Process
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{
		dbURL:  peertest.Postgres(t),
		redis:  peertest.StartRedis(t, "--appendonly", "yes"),
		mail:   peertest.StartMailpit(t),
		stripe: escrowtest.StartStripe(t, escrowtest.StripeConfig{Secret: e2eStripeKey, Validate: peertest.StartStripeMock(t)}),
		hooks:  escrowtest.StartReceiver(t, e2eWebhookKey),
		bin:    peertest.Binary(t, "./cmd/server"),
		dir:    t.TempDir(),
		apiOut: &peertest.Buffer{},
	}
	s.registry = filepath.Join(s.dir, "partners.json")
	reg, _ := json.Marshal(map[string]any{"partners": map[string]any{e2ePartner: map[string]string{"url": s.hooks.URL, "secret": e2eWebhookKey}}})
	if err := os.WriteFile(s.registry, reg, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// startServer runs cmd/server with the relay on this stack's database and
// waits until the relay runs. extra are more VAR=value settings.
func (s *stack) startServer(t *testing.T, extra ...string) *peertest.Process {
	t.Helper()
	env := append([]string{
		"REDIS_URL=" + s.redis.URL(), "LOG_LEVEL=info", "WORKER_CONCURRENCY=20",
		"SMTP_URL=" + s.mail.SMTPURL(), "MAIL_FROM=escrow@example.com",
		"STRIPE_SECRET_KEY=" + e2eStripeKey, "STRIPE_API_BASE=" + s.stripe.URL,
		"WEBHOOK_ENDPOINTS_FILE=" + s.registry, "WEBHOOK_ALLOW_PRIVATE_NETWORKS=true",
		"AUDIT_LOG_PATH=" + filepath.Join(s.dir, fmt.Sprintf("audit-%d.jsonl", len(s.servers))),
		"DEAD_LETTER_PATH=" + filepath.Join(s.dir, "dead-letters.jsonl"),
		"OUTBOX_DATABASE_URL=" + s.dbURL,
	}, extra...)
	// No scheduler: its periodic jobs would add "job done" lines of their own.
	p := peertest.Start(t, s.bin, env, "-no-scheduler")
	if !p.WaitOutput(`"outbox relay running"`, 60*time.Second) {
		t.Fatalf("server did not start its relay:\n%s", p.Output())
	}
	s.servers = append(s.servers, p)
	return p
}

// startAPI runs this service in-process on a free port until the test ends.
func (s *stack) startAPI(t *testing.T) {
	t.Helper()
	getenv := func(k string) string {
		return map[string]string{"DATABASE_URL": s.dbURL, "ESCROW_ADDR": "127.0.0.1:0"}[k]
	}
	escrowtest.Start(t, "escrow API", time.Minute, func(ctx context.Context) error { return run(ctx, nil, getenv, s.apiOut) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := s.apiOut.String()
		if i := strings.Index(out, "listening on "); i >= 0 {
			s.api = strings.Fields(out[i+len("listening on "):])[0]
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("escrow API did not start:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *stack) post(t *testing.T, path, body string) int {
	t.Helper()
	resp, err := http.Post(s.api+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// escrowOf is the i-th escrow of a series: quoted and non-ASCII addresses
// for the first two, a 64-character ID for the third.
func escrowOf(series string, i int) escrow {
	e := escrow{Status: "funded", terms: terms{
		ID:         fmt.Sprintf("esc-%s-%d", series, i),
		BuyerEmail: fmt.Sprintf("buyer-%s-%d@customers.example.com", series, i), SellerEmail: fmt.Sprintf("seller-%s-%d@customers.example.com", series, i),
		Amount: int64(1000 + i), Currency: "EUR", PaymentIntentID: fmt.Sprintf("pi_%s%d", series, i), PartnerID: e2ePartner,
	}}
	switch i {
	case 0:
		e.BuyerEmail = fmt.Sprintf(`"buyer %s"@customers.example.com`, series)
	case 1:
		e.SellerEmail = fmt.Sprintf("verkäufer-%s@bücher.de", series)
	case 2:
		e.ID = "esc-" + series + "-" + strings.Repeat("x", 59-len(series))
	}
	return e
}

// createAndRelease commits 2 × n escrow changes through the API (create,
// then release) and returns the escrows and the job IDs they added.
func (s *stack) createAndRelease(t *testing.T, series string, n int) ([]escrow, []string) {
	t.Helper()
	var escrows []escrow
	var ids []string
	for i := range n {
		e := escrowOf(series, i)
		body, _ := json.Marshal(e.terms)
		s.stripe.AddIntent(e.PaymentIntentID, "requires_capture", e.Amount)
		if code := s.post(t, "/escrows", string(body)); code != http.StatusCreated {
			t.Fatalf("create %s: got %d, want 201\n%s", e.ID, code, s.apiOut.String())
		}
		escrows = append(escrows, e)
	}
	for _, e := range escrows {
		if code := s.post(t, "/escrows/"+e.ID+"/release", ""); code != http.StatusOK {
			t.Fatalf("release %s: got %d, want 200\n%s", e.ID, code, s.apiOut.String())
		}
		for _, build := range []func(escrow, time.Time) ([]*tasks.Task, error){createJobs, releaseJobs} {
			jobs, err := build(e, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				ids = append(ids, j.ID)
			}
		}
	}
	return escrows, ids
}

// runs counts the "job done" and "job failed…" lines per job ID in the
// output of every server this stack started.
func (s *stack) runs() (done, failed map[string]int) {
	done, failed = map[string]int{}, map[string]int{}
	for _, p := range s.servers {
		for _, line := range strings.Split(p.Output(), "\n") {
			var l struct {
				Msg    string `json:"msg"`
				TaskID string `json:"task_id"`
			}
			if json.Unmarshal([]byte(line), &l) != nil || l.TaskID == "" {
				continue
			}
			switch {
			case l.Msg == "job done":
				done[l.TaskID]++
			case strings.HasPrefix(l.Msg, "job failed"):
				failed[l.TaskID]++
			}
		}
	}
	return done, failed
}

// waitDone waits until every job in ids has run.
func (s *stack) waitDone(t *testing.T, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, _ := s.runs()
		missing := 0
		for _, id := range ids {
			if done[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs did not run within %s; last server output:\n%s", missing, len(ids), timeout, tail(s.servers[len(s.servers)-1].Output(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// checkEffects fails unless every job in ids ran once and nothing else ran,
// and each escrow's effects reached their peers once: the payment-confirmed
// and release e-mails (mailpit), the capture (Stripe), the status webhook
// (receiver) and the two audit records.
func (s *stack) checkEffects(t *testing.T, escrows []escrow, ids []string) {
	t.Helper()
	// Every job has run and asynq holds no active job or lease: its lease
	// recoverer has nothing to run again, so the counts below are final.
	// (A "job done" line is written just before asynq records the job
	// completed, hence the wait.)
	opt, err := asynq.ParseRedisURI(s.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	escrowtest.Eventually(t, "asynq to hold no active job or lease", 30*time.Second, func() bool { return len(escrowtest.Leased(t, opt)) == 0 })
	escrowtest.NoLeases(t, opt)
	done, failed := s.runs()
	var twice, extra []string
	for _, id := range ids {
		if done[id] != 1 {
			twice = append(twice, fmt.Sprintf("%s ran %d times", id, done[id]))
		}
	}
	for id := range done {
		if !slices.Contains(ids, id) {
			extra = append(extra, id)
		}
	}
	if len(twice) > 0 || len(extra) > 0 || len(failed) > 0 {
		t.Errorf("job runs: %q; unexpected jobs %q; failures %v; want each of the %d jobs once", twice, extra, failed, len(ids))
	}

	mails := s.mail.Messages(t)
	perMessageID := map[string]int{}
	to := map[string]int{}
	for _, m := range mails {
		perMessageID[m.MessageID]++
		for _, a := range m.To {
			to[a.Address]++
		}
	}
	captures, _, _, _ := s.stripe.Effects()
	deliveries, refused := s.hooks.Deliveries()
	bad := len(refused)
	lost, doubled := 0, 0
	count := func(got int) {
		switch {
		case got == 0:
			lost++
		case got > 1:
			doubled++
		}
	}
	for _, e := range escrows {
		count(to[e.BuyerEmail])
		count(to[e.SellerEmail])
		count(captures[e.PaymentIntentID])
	}
	for id, n := range perMessageID {
		if n != 1 {
			t.Errorf("Message-ID %s delivered %d times, want once", id, n)
		}
	}
	for _, n := range deliveries {
		count(n)
	}
	lost += len(escrows) - len(deliveries)
	auditEvents := map[string]int{}
	for i := range s.servers {
		b, _ := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("audit-%d.jsonl", i)))
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r struct {
				EventID string `json:"eventId"`
			}
			if json.Unmarshal([]byte(line), &r) == nil && r.EventID != "" {
				auditEvents[r.EventID]++
			}
		}
	}
	for _, e := range escrows {
		count(auditEvents[eventID(e.ID, "created")])
		count(auditEvents[eventID(e.ID, "released")])
	}
	effects := len(mails) + len(deliveries) + len(captures) + len(auditEvents)
	t.Logf("escrows %d, jobs %d, effects %d (mails %d, captures %d, webhooks %d, audit records %d), lost %d, doubled %d",
		len(escrows), len(ids), effects, len(mails), len(captures), len(deliveries), len(auditEvents), lost, doubled)
	if lost != 0 || doubled != 0 || bad != 0 || len(mails) != 2*len(escrows) || len(captures) != len(escrows) {
		t.Errorf("got %d lost, %d doubled, %d unverified webhooks, %d mails, %d captures; want 0, 0, 0, %d, %d",
			lost, doubled, bad, len(mails), len(captures), 2*len(escrows), len(escrows))
	}
	// No customer address and no secret in any log line.
	logs := s.apiOut.String()
	for _, p := range s.servers {
		logs += p.Output()
	}
	for _, e := range escrows {
		for _, secret := range []string{e.BuyerEmail, e.SellerEmail, e2eStripeKey, e2eWebhookKey} {
			if strings.Contains(logs, secret) {
				t.Errorf("a log line shows %q", secret)
			}
		}
	}
}

// outboxRow is one row waiting in the outbox table.
type outboxRow struct{ jobID, queue string }

// listOutbox is the rows waiting in the outbox table of db (a pool or a
// connection), oldest first.
func listOutbox(t *testing.T, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) []outboxRow {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT job_id, queue FROM `+outbox.Table+` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outboxRow, error) {
		var r outboxRow
		err := row.Scan(&r.jobID, &r.queue)
		return r, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func pgxConnect(url string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, url)
}

func (s *stack) outboxRows(t *testing.T) []outboxRow {
	t.Helper()
	db, err := pgxConnect(s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	return listOutbox(t, db)
}

// (1) Redis is down while the service commits 50 escrow changes: the API
// answers every request (the jobs are rows in its transactions), the relay
// keeps failing and keeps the rows, and once Redis is back every side effect
// happens exactly once. No job existed in Redis before it came back, so no
// job was active at a crash and asynq's lease recovery has nothing to redo.
func TestRedisDownWhileServiceCommits50ChangesEveryEffectOnceAfter(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	srv := s.startServer(t)
	s.startAPI(t)
	s.redis.Kill()

	escrows, ids := s.createAndRelease(t, "down", 25)
	if !srv.WaitOutput("outbox relay: batch failed", 60*time.Second) {
		t.Fatalf("the relay never reported Redis down:\n%s", tail(srv.Output(), 30))
	}
	if got, want := len(s.outboxRows(t)), len(ids); got != want {
		t.Fatalf("outbox rows while Redis is down: got %d, want %d (every committed job waits)", got, want)
	}
	s.redis.Start()
	s.waitDone(t, ids, 3*time.Minute)
	if rows := s.outboxRows(t); len(rows) != 0 {
		t.Errorf("outbox after the run: got %d rows, want 0", len(rows))
	}
	s.checkEffects(t, escrows, ids)
}

// (2) The relay is SIGKILLed after enqueuing a batch and before deleting
// its rows (ESCROWJOBS_TEST_KILL_RELAY_AFTER_ENQUEUE). The rows survive with
// their jobs already in Redis; the next relay finds them as duplicates,
// counts them done, and no effect happens twice. The killed process's
// worker polls once at start and then sleeps an hour (one fetch loop,
// WORKER_POLL_INTERVAL=1h, no wake-up on enqueue), so it runs no job and
// leaves none for asynq's lease recovery to redo: the test checks that.
func TestRelayKilledBetweenEnqueueAndDeleteDoublesNothing(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	a := s.startServer(t, "ESCROWJOBS_TEST_KILL_RELAY_AFTER_ENQUEUE=1", "WORKER_FETCH_LOOPS=1", "WORKER_POLL_INTERVAL=1h", "WORKER_DISABLE_WAKE=true")
	time.Sleep(time.Second) // its one fetch loop has found the queues empty and sleeps
	s.startAPI(t)
	escrows, ids := s.createAndRelease(t, "kill", 10)
	if err, exited := a.Wait(60 * time.Second); !exited || err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("server with the kill hook: got exit %v (exited %v), want killed by SIGKILL\n%s", err, exited, tail(a.Output(), 20))
	}
	if !strings.Contains(a.Output(), "killing this process between enqueue and delete") {
		t.Fatalf("the kill hook did not fire:\n%s", tail(a.Output(), 20))
	}
	if done, _ := s.runs(); len(done) != 0 {
		t.Fatalf("the killed server's worker ran %d jobs; the test needs it idle so only the relay's window is tested", len(done))
	}

	// The window was hit: rows still in the outbox whose jobs Redis holds.
	opt, _ := asynq.ParseRedisURI(s.redis.URL())
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	rows := s.outboxRows(t)
	var inRedis []string
	for _, r := range rows {
		if _, err := insp.GetTaskInfo(r.queue, r.jobID); err == nil {
			inRedis = append(inRedis, r.jobID)
		}
	}
	t.Logf("after the kill: %d rows in the outbox, %d of them already enqueued", len(rows), len(inRedis))
	if len(rows) != len(ids) || len(inRedis) == 0 {
		t.Fatalf("after the kill: got %d rows (%d in Redis), want all %d rows kept and at least one already in Redis", len(rows), len(inRedis), len(ids))
	}

	b := s.startServer(t)
	s.waitDone(t, ids, 3*time.Minute)
	b.Signal(syscall.SIGTERM)
	if err, exited := b.Wait(30 * time.Second); !exited || err != nil {
		t.Fatalf("SIGTERM: got exit %v (exited %v), want a clean exit\n%s", err, exited, tail(b.Output(), 20))
	}
	var stopped struct {
		Enqueued, Duplicates, Failures int
	}
	for _, line := range strings.Split(b.Output(), "\n") {
		if strings.Contains(line, `"outbox relay stopped"`) {
			_ = json.Unmarshal([]byte(line), &stopped)
		}
	}
	if stopped.Duplicates != len(inRedis) || stopped.Enqueued != len(ids)-len(inRedis) || stopped.Failures != 0 {
		t.Errorf("second relay: got %+v, want %d duplicates (the killed batch), %d enqueued, 0 failures",
			stopped, len(inRedis), len(ids)-len(inRedis))
	}
	if rows := s.outboxRows(t); len(rows) != 0 {
		t.Errorf("outbox after the run: got %d rows, want 0", len(rows))
	}
	s.checkEffects(t, escrows, ids)
}
