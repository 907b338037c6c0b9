package main

// End-to-end: this service in-process, the real cmd/server binary running
// the outbox relay and the production adapters, real PostgreSQL, Redis,
// mailpit, the stateful Stripe of escrowtest (every request checked by
// stripe-mock first) and escrowtest's verifying webhook receiver. Each
// transition is a flow; each effect is counted where it lands, and each
// job's runs (the flows' start jobs and steps) are counted from the
// server's "job done" lines.

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

	"github.com/escrowjobs/escrowjobs/audit"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/webhook"
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
		return map[string]string{"DATABASE_URL": s.dbURL, "REDIS_URL": s.redis.URL(), "ESCROW_ADDR": "127.0.0.1:0"}[k]
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
		ids = append(ids, runs(fundFlow(e, time.Now()), releaseFlow(e, time.Now()))...)
	}
	return escrows, ids
}

// runs is the job IDs that run when the flows of plans complete: each
// flow's start job and its steps (not its on-failure steps).
func runs(plans ...*plan) []string {
	var ids []string
	for _, p := range plans {
		ids = append(ids, flows.StartType+":"+p.id)
		ids = append(ids, p.jobs...)
	}
	return ids
}

// runs counts the "job done" and "job failed…" lines per job ID in the
// output of every server this stack started.
func (s *stack) runs() (done, failed map[string]int) {
	var outs []string
	for _, p := range s.servers {
		outs = append(outs, p.Output())
	}
	return escrowtest.JobRuns(outs...)
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
	lost += 2*len(escrows) - len(deliveries) // funded and released
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
		count(auditEvents[eventID(e.ID, "release_requested")])
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
	if got, want := len(s.outboxRows(t)), 2*len(escrows); got != want {
		t.Fatalf("outbox rows while Redis is down: got %d, want %d (every committed flow waits)", got, want)
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
	if len(rows) != 2*len(escrows) || len(inRedis) == 0 {
		t.Fatalf("after the kill: got %d rows (%d in Redis), want all %d rows kept and at least one already in Redis", len(rows), len(inRedis), 2*len(escrows))
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
	if stopped.Duplicates != len(inRedis) || stopped.Enqueued != len(rows)-len(inRedis) || stopped.Failures != 0 {
		t.Errorf("second relay: got %+v, want %d duplicates (the killed batch), %d enqueued, 0 failures",
			stopped, len(inRedis), len(rows)-len(inRedis))
	}
	if rows := s.outboxRows(t); len(rows) != 0 {
		t.Errorf("outbox after the run: got %d rows, want 0", len(rows))
	}
	s.checkEffects(t, escrows, ids)
}

// getEscrow is GET /escrows/{id}.
func (s *stack) getEscrow(t *testing.T, id string) escrowView {
	t.Helper()
	resp, err := http.Get(s.api + "/escrows/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v escrowView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /escrows/%s: got %d, %v", id, resp.StatusCode, err)
	}
	return v
}

// auditRecords is the audit records the servers wrote, in order.
func (s *stack) auditRecords(t *testing.T) []audit.Record {
	t.Helper()
	var out []audit.Record
	for i := range s.servers {
		b, _ := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("audit-%d.jsonl", i)))
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r audit.Record
			if json.Unmarshal([]byte(line), &r) == nil && r.EventID != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// (3) Money first. Four escrows through the real worker and peers: a
// release whose authorization expired (its capture fails for good), a
// release that captures, a dispute resolved refund_to_buyer on a
// PaymentIntent never captured (the refund job cancels it), and a split.
// Nobody is told that money moved unless it did, and after it did.
func TestFlowsTellOnlyWhatTheMoneyDid(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.startServer(t)
	s.startAPI(t)
	post := func(path, body string, want int) {
		t.Helper()
		if code := s.post(t, path, body); code != want {
			t.Fatalf("POST %s: got %d, want %d\n%s", path, code, want, tail(s.apiOut.String(), 10))
		}
	}
	create := func(i int) escrow {
		e := escrowOf("money", i)
		s.stripe.AddIntent(e.PaymentIntentID, "requires_capture", e.Amount)
		body, _ := json.Marshal(e.terms)
		post("/escrows", string(body), http.StatusCreated)
		return e
	}
	expired, good, uncaptured, split := create(3), create(4), create(5), create(6)
	const sellerShare = 600

	s.stripe.ExpireAuthorization(expired.PaymentIntentID)
	post("/escrows/"+expired.ID+"/release", "", http.StatusOK)
	post("/escrows/"+good.ID+"/release", "", http.StatusOK)
	for _, e := range []escrow{uncaptured, split} {
		post("/escrows/"+e.ID+"/dispute", `{"disputeId":"dsp-`+e.ID+`","reason":"Item not as described."}`, http.StatusOK)
	}
	post("/escrows/"+uncaptured.ID+"/resolve", `{"resolution":"refund_to_buyer"}`, http.StatusOK)
	post("/escrows/"+split.ID+"/resolve", `{"resolution":"split"}`, http.StatusBadRequest)
	post("/escrows/"+split.ID+"/resolve", fmt.Sprintf(`{"resolution":"split","sellerAmount":%d}`, sellerShare), http.StatusOK)
	// Money moving: the next transition waits.
	post("/escrows/"+good.ID+"/refund", `{}`, http.StatusConflict)

	want := map[string]string{expired.ID: "release_failed", good.ID: "released", uncaptured.ID: "resolved", split.ID: "resolved"}
	escrowtest.Eventually(t, "every escrow's money step to end", 90*time.Second, func() bool {
		for id, status := range want {
			if s.getEscrow(t, id).Status != status {
				return false
			}
		}
		return true
	})
	// Every mail that is due: payment confirmations (4), the release (1),
	// the dispute opened (2 × 2) and resolved (2 × 2) mails.
	mails := s.mail.WaitMessages(t, 13)
	escrowtest.Eventually(t, "the failure audit record", 30*time.Second, func() bool {
		for _, r := range s.auditRecords(t) {
			if r.Action == "escrow.release_failed" {
				return true
			}
		}
		return false
	})

	// The failed release: GET shows it, the seller and the partner heard
	// nothing, the audit log has the failure, Stripe no capture.
	v := s.getEscrow(t, expired.ID)
	var release *flowSummary
	for i := range v.Flows {
		if v.Flows[i].Name == "release" {
			release = &v.Flows[i]
		}
	}
	if release == nil || release.ID != "release:"+expired.ID || release.State != "failed" || release.FailedStep != "capture" ||
		!strings.Contains(release.Error, "authorization expired or canceled") {
		t.Errorf("expired release: got flows %+v, want release:%s failed at capture with \"authorization expired or canceled\"", v.Flows, expired.ID)
	}
	store := flows.NewStore(peertest.RedisClient(t, s.redis.URL()), nil)
	fv, err := store.Status(context.Background(), flows.ID("release", expired.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range fv.Steps {
		wantState := map[string]string{"capture": "failed", "seller-email": "blocked", "partner-webhook": "blocked", "audit": "completed", "failure-audit": "completed"}[st.Name]
		if st.State != wantState {
			t.Errorf("expired release, step %s: got %s, want %s", st.Name, st.State, wantState)
		}
	}
	var failure *audit.Record
	for _, r := range s.auditRecords(t) {
		if r.Action == "escrow.release_failed" {
			if failure != nil || r.TransactionID != expired.ID {
				t.Errorf("failure audit record %+v: want one, of %s", r, expired.ID)
			}
			failure = &r
		}
	}
	if failure != nil {
		var meta map[string]string
		_ = json.Unmarshal(failure.Metadata, &meta)
		if meta["flowId"] != "release:"+expired.ID || meta["failedStep"] != "capture" || !strings.Contains(meta["failure"], "authorization expired or canceled") {
			t.Errorf("failure audit metadata: got %v, want the flow, the failed step capture and its error (authorization expired or canceled)", meta)
		}
	}
	if captured, _, _, _ := s.stripe.Effects(); captured[expired.PaymentIntentID] != 0 {
		t.Errorf("expired release: got %d captures, want none", captured[expired.PaymentIntentID])
	}

	// Who was told what, and when.
	to := map[string][]peertest.MailpitSummary{}
	for _, m := range mails {
		for _, a := range m.To {
			to[a.Address] = append(to[a.Address], m)
		}
	}
	if got := to[expired.SellerEmail]; len(got) != 0 {
		t.Errorf("expired release: the seller got %d mails (%q…), want none", len(got), got[0].Subject)
	}
	hooks := map[string][]string{} // transaction → statuses
	for _, d := range s.hooks.Received() {
		var b webhook.Body
		if err := json.Unmarshal(d.Body, &b); err != nil {
			t.Fatal(err)
		}
		hooks[b.Data.TransactionID] = append(hooks[b.Data.TransactionID], b.Data.Status)
	}
	for id, wantHooks := range map[string][]string{
		expired.ID: {"funded"}, good.ID: {"funded", "released"},
		uncaptured.ID: {"funded", "disputed", "resolved"}, split.ID: {"funded", "disputed", "resolved"},
	} {
		got := slices.Clone(hooks[id])
		slices.Sort(got)
		slices.Sort(wantHooks)
		if !slices.Equal(got, wantHooks) {
			t.Errorf("%s: got webhooks %q, want %q", id, hooks[id], wantHooks)
		}
	}

	// The good release: captured, then the seller was told.
	pi := s.stripe.Intent(good.PaymentIntentID)
	if got := to[good.SellerEmail]; len(got) != 1 || !strings.HasPrefix(got[0].Subject, "Funds released") {
		t.Errorf("good release: seller mails %+v, want the release mail", got)
	} else if pi.Status != "succeeded" || pi.CapturedAt.IsZero() || got[0].Created.Before(pi.CapturedAt.Truncate(time.Millisecond)) {
		t.Errorf("good release: payment intent %s captured at %s, release mail at %s; want captured, before the mail", pi.Status, pi.CapturedAt, got[0].Created)
	}

	// refund_to_buyer on an uncaptured PaymentIntent: canceled, then the
	// dispute-resolved mails.
	pi = s.stripe.Intent(uncaptured.PaymentIntentID)
	if pi.Status != "canceled" || pi.CanceledAt.IsZero() || pi.Received != 0 {
		t.Errorf("refund_to_buyer: payment intent %+v, want canceled, nothing received", pi)
	}
	if got := s.stripe.Cancels(); got != 1 {
		t.Errorf("cancels: got %d, want 1", got)
	}
	if refunds := s.stripe.Refunds(); len(refunds) != 0 {
		t.Errorf("refunds: got %+v, want none (nothing was captured)", refunds)
	}
	resolvedMails := func(e escrow) []peertest.MailpitSummary {
		var out []peertest.MailpitSummary
		for _, addr := range []string{e.BuyerEmail, e.SellerEmail} {
			for _, m := range to[addr] {
				if strings.Contains(s.mail.Message(t, m.ID).Text, "The dispute was resolved") {
					out = append(out, m)
				}
			}
		}
		return out
	}
	got := resolvedMails(uncaptured)
	if len(got) != 2 {
		t.Errorf("refund_to_buyer: got %d dispute-resolved mails, want 2 (buyer and seller)", len(got))
	}
	for _, m := range got {
		if m.Created.Before(pi.CanceledAt.Truncate(time.Millisecond)) {
			t.Errorf("refund_to_buyer: dispute-resolved mail at %s, before the cancel at %s", m.Created, pi.CanceledAt)
		}
	}

	// split: the seller's share captured (the rest of the hold released).
	pi = s.stripe.Intent(split.PaymentIntentID)
	if pi.Status != "succeeded" || pi.Received != sellerShare {
		t.Errorf("split: payment intent %s received %d, want succeeded with %d", pi.Status, pi.Received, sellerShare)
	}
	if got := resolvedMails(split); len(got) != 2 {
		t.Errorf("split: got %d dispute-resolved mails, want 2", len(got))
	}
	captured, _, _, _ := s.stripe.Effects()
	if captured[good.PaymentIntentID] != 1 || captured[split.PaymentIntentID] != 1 || len(captured) != 2 {
		t.Errorf("captures: got %v, want one each for %s and %s", captured, good.PaymentIntentID, split.PaymentIntentID)
	}
	// The stored status follows the money once it has moved; a release of
	// a released escrow is refused.
	db, err := pgxConnect(s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if e, err := load(context.Background(), db, good.ID, false); err != nil || e.Status != "released" {
		t.Errorf("stored status of %s: got %q, %v; want released", good.ID, e.Status, err)
	}
	post("/escrows/"+good.ID+"/release", "", http.StatusConflict)
	if len(s.mail.Messages(t)) != 13 {
		t.Errorf("mails: got %d, want 13", len(s.mail.Messages(t)))
	}
}
