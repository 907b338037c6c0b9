package escrowjobs_test

// Process faults (issue 5): the real cmd/server binary (the production worker
// process) killed with SIGKILL while it holds in-flight jobs, stopped with
// SIGTERM mid-run, and three of them sharing one Redis under load.
//
// The peers are real (redis-server, mailpit) or stateful loopback fakes that
// count effects per job: a Stripe that honours Idempotency-Key and keeps
// PaymentIntents and refunds, and a webhook receiver that checks every
// signature with webhook.Verify. The slow peers apply the effect first and
// answer late, so a worker that dies in the pause has caused the effect but
// never heard of it — the case idempotency exists for.
//
// Each test logs jobs in, effects out, lost and doubled, and ends by scanning
// the output of every server it ran for secrets and raw e-mail addresses.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/internal/testenv"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/webhook"
	"github.com/hibiken/asynq"
)

// Secrets the servers are given; none may ever appear in their output.
const (
	pfStripeKey     = "sk_test_pfNeverLogThisStripeKey0123456789"
	pfWebhookKeyB64 = "cGYtd2ViaG9vay1zaWduaW5nLWtleS0zMi1ieXRlcyE=" // "pf-webhook-signing-key-32-bytes!"
	pfWebhookSecret = "whsec_" + pfWebhookKeyB64
	pfSMTPUser      = "pf-relay"
	pfSMTPPassword  = "pf-smtp-Pa55w0rd-neverLogged"
	pfMailFrom      = "ops@example.com"
	pfPartner       = "pf-partner"
	pfOccurredAt    = "2026-11-29T10:00:00Z"
)

// pfEmailPattern matches every recipient address the tests put in payloads
// (pfAddress), unmasked. A masked one ("p***@…") does not match.
var pfEmailPattern = regexp.MustCompile(`pf-(?:buyer|seller)-[a-z0-9-]+@customers\.example\.com`)

func pfAddress(role, series string, i int) string {
	return fmt.Sprintf("pf-%s-%s-%d@customers.example.com", role, series, i)
}

// ---------------------------------------------------------------- fake Stripe

// pfStripe is a stateful Stripe API: PaymentIntents that can be retrieved and
// captured once, refunds that can be created and listed by payment_intent,
// and an Idempotency-Key store that replays the first answer to a key. A
// POST's effect is applied at once; the answer may then be held back (delay)
// so a worker can die between the effect and the answer.
type pfStripe struct {
	srv      *httptest.Server
	inflight atomic.Int64

	mu       sync.Mutex
	delay    func(r *http.Request) time.Duration
	intents  map[string]*pfIntent
	refunds  []*pfRefund
	answers  map[string]pfAnswer // Idempotency-Key → first answer
	posts    int                 // POSTs received, replays included
	replays  int                 // POSTs answered from the Idempotency-Key store
	captured map[string]int      // payment intent → captures applied
	refunded map[string]int      // payment intent → refunds applied
	keys     map[string][]string // payment intent → Idempotency-Keys of its POSTs
}

type pfIntent struct {
	ID, Status, Charge         string
	Amount, Received, Refunded int64
	Metadata                   map[string]string
}

type pfRefund struct {
	ID, PaymentIntent, Status string
	Amount                    int64
	Metadata                  map[string]string
}

type pfAnswer struct {
	status int
	body   []byte
}

func pfStartStripe(t *testing.T) *pfStripe {
	t.Helper()
	s := &pfStripe{
		intents: map[string]*pfIntent{}, answers: map[string]pfAnswer{},
		captured: map[string]int{}, refunded: map[string]int{}, keys: map[string][]string{},
		delay: func(*http.Request) time.Duration { return 0 },
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/payment_intents/{id}", s.getIntent)
	mux.HandleFunc("POST /v1/payment_intents/{id}/capture", s.capture)
	mux.HandleFunc("GET /v1/refunds", s.listRefunds)
	mux.HandleFunc("POST /v1/refunds", s.createRefund)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		if r.Header.Get("Authorization") != "Bearer "+pfStripeKey {
			pfStripeError(w, http.StatusUnauthorized, "invalid_request_error", "", "Invalid API Key provided")
			return
		}
		if err := r.ParseForm(); err != nil {
			pfStripeError(w, http.StatusBadRequest, "invalid_request_error", "", "bad form")
			return
		}
		rec := httptest.NewRecorder()
		s.mu.Lock()
		key := r.Header.Get("Idempotency-Key")
		if r.Method == http.MethodPost {
			s.posts++
			pi := r.PostForm.Get("payment_intent") // a refund
			if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/payment_intents/"); ok {
				pi = strings.TrimSuffix(rest, "/capture") // a capture
			}
			s.keys[pi] = append(s.keys[pi], key)
		}
		if prev, ok := s.answers[key]; ok && key != "" && r.Method == http.MethodPost {
			s.replays++
			rec.Header().Set("Idempotent-Replayed", "true")
			rec.WriteHeader(prev.status)
			_, _ = rec.Write(prev.body)
		} else {
			mux.ServeHTTP(rec, r)
			if key != "" && r.Method == http.MethodPost {
				s.answers[key] = pfAnswer{status: rec.Code, body: rec.Body.Bytes()}
			}
		}
		delay := s.delay(r)
		s.mu.Unlock()
		if delay > 0 { // the effect happened; the answer comes late, or never
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *pfStripe) setDelay(fn func(r *http.Request) time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = fn
}

func (s *pfStripe) addIntent(id, status string, amount int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi := &pfIntent{ID: id, Status: status, Amount: amount, Metadata: map[string]string{}}
	if status == "succeeded" {
		pi.Received, pi.Charge = amount, "ch_before_"+id
	}
	s.intents[id] = pi
}

func (s *pfStripe) getIntent(w http.ResponseWriter, r *http.Request) {
	pi, ok := s.intents[r.PathValue("id")]
	if !ok {
		pfStripeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such payment_intent")
		return
	}
	pfWriteJSON(w, pfIntentJSON(pi))
}

func (s *pfStripe) capture(w http.ResponseWriter, r *http.Request) {
	pi, ok := s.intents[r.PathValue("id")]
	if !ok {
		pfStripeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such payment_intent")
		return
	}
	if pi.Status != "requires_capture" {
		pfStripeError(w, http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state",
			"This PaymentIntent could not be captured because it has a status of "+pi.Status+".")
		return
	}
	amount := pi.Amount
	if v := r.PostForm.Get("amount_to_capture"); v != "" {
		amount, _ = strconv.ParseInt(v, 10, 64)
	}
	if amount <= 0 || amount > pi.Amount {
		pfStripeError(w, http.StatusBadRequest, "invalid_request_error", "amount_too_large", "amount_to_capture is too large")
		return
	}
	s.captured[pi.ID]++
	pi.Status, pi.Received, pi.Charge = "succeeded", amount, "ch_pf_"+pi.ID
	for k, v := range pfMetadata(r.PostForm) {
		pi.Metadata[k] = v
	}
	pfWriteJSON(w, pfIntentJSON(pi))
}

func (s *pfStripe) listRefunds(w http.ResponseWriter, r *http.Request) {
	pi := r.Form.Get("payment_intent")
	data := []any{}
	for i := len(s.refunds) - 1; i >= 0; i-- { // newest first
		if ref := s.refunds[i]; pi == "" || ref.PaymentIntent == pi {
			data = append(data, pfRefundJSON(ref))
		}
	}
	pfWriteJSON(w, map[string]any{"object": "list", "url": "/v1/refunds", "has_more": false, "data": data})
}

func (s *pfStripe) createRefund(w http.ResponseWriter, r *http.Request) {
	pi, ok := s.intents[r.PostForm.Get("payment_intent")]
	if !ok || pi.Status != "succeeded" {
		pfStripeError(w, http.StatusBadRequest, "invalid_request_error", "resource_missing", "No such captured payment_intent")
		return
	}
	amount := pi.Received - pi.Refunded
	if v := r.PostForm.Get("amount"); v != "" {
		amount, _ = strconv.ParseInt(v, 10, 64)
	}
	if amount <= 0 || amount > pi.Received-pi.Refunded {
		pfStripeError(w, http.StatusBadRequest, "invalid_request_error", "charge_already_refunded", "Refund amount is greater than what remains.")
		return
	}
	s.refunded[pi.ID]++
	pi.Refunded += amount
	ref := &pfRefund{ID: fmt.Sprintf("re_pf%d", len(s.refunds)+1), PaymentIntent: pi.ID, Status: "succeeded", Amount: amount, Metadata: pfMetadata(r.PostForm)}
	s.refunds = append(s.refunds, ref)
	pfWriteJSON(w, pfRefundJSON(ref))
}

// effects returns the captures and refunds applied per payment intent, the
// POSTs received and how many of them were replays.
func (s *pfStripe) effects() (captured, refunded map[string]int, posts, replays int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	captured, refunded = map[string]int{}, map[string]int{}
	for k, v := range s.captured {
		captured[k] = v
	}
	for k, v := range s.refunded {
		refunded[k] = v
	}
	return captured, refunded, s.posts, s.replays
}

// keysOf returns the Idempotency-Keys of the POSTs about payment intent pi.
func (s *pfStripe) keysOf(pi string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys[pi])
}

func pfIntentJSON(pi *pfIntent) map[string]any {
	var charge any
	if pi.Charge != "" {
		charge = pi.Charge
	}
	return map[string]any{
		"id": pi.ID, "object": "payment_intent", "status": pi.Status, "amount": pi.Amount,
		"amount_received": pi.Received, "currency": "usd", "capture_method": "manual",
		"latest_charge": charge, "metadata": pi.Metadata, "client_secret": pi.ID + "_secret_pf",
	}
}

func pfRefundJSON(r *pfRefund) map[string]any {
	return map[string]any{
		"id": r.ID, "object": "refund", "amount": r.Amount, "currency": "usd",
		"payment_intent": r.PaymentIntent, "status": r.Status, "metadata": r.Metadata,
	}
}

func pfWriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_pf")
	_ = json.NewEncoder(w).Encode(v)
}

func pfStripeError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_pf")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"type": typ, "code": code, "message": msg}})
}

func pfMetadata(form map[string][]string) map[string]string {
	m := map[string]string{}
	for k, v := range form {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(v) > 0 {
			m[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	return m
}

// ------------------------------------------------------------ webhook receiver

// pfReceiver is a partner endpoint: it verifies every request with
// webhook.Verify and counts verified deliveries per webhook-id. A delivery
// is counted on arrival; the answer may then be held back (delay).
type pfReceiver struct {
	srv      *httptest.Server
	inflight atomic.Int64

	mu    sync.Mutex
	delay func(id string) time.Duration
	got   map[string]int // webhook-id → verified deliveries
	bad   []string       // why a request was refused
}

func pfStartReceiver(t *testing.T) *pfReceiver {
	t.Helper()
	rc := &pfReceiver{got: map[string]int{}, delay: func(string) time.Duration { return 0 }}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.inflight.Add(1)
		defer rc.inflight.Add(-1)
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = webhook.Verify(pfWebhookSecret, r.Header, body, 0)
		}
		id := r.Header.Get(webhook.HeaderID)
		var hook handlers.WebhookBody
		if err == nil {
			if jerr := json.Unmarshal(body, &hook); jerr != nil || hook.Data.EventID != id {
				err = fmt.Errorf("body %q does not carry webhook-id %q", body, id)
			}
		}
		rc.mu.Lock()
		if err != nil {
			rc.bad = append(rc.bad, err.Error())
		} else {
			rc.got[id]++
		}
		delay := rc.delay(id)
		rc.mu.Unlock()
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *pfReceiver) setDelay(fn func(id string) time.Duration) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.delay = fn
}

func (rc *pfReceiver) deliveries() (got map[string]int, bad []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	got = map[string]int{}
	for k, v := range rc.got {
		got[k] = v
	}
	return got, slices.Clone(rc.bad)
}

// -------------------------------------------------------------------- harness

// pfHarness is one Redis, the peers, and the server processes of one test.
type pfHarness struct {
	bin      string
	redisURL string
	opt      asynq.RedisConnOpt
	client   *tasks.Client
	insp     *tasks.Inspector
	stripe   *pfStripe
	hooks    *pfReceiver
	mail     *testenv.Mailpit // nil unless asked for
	smtpURL  string
	dir      string
	registry string

	mu    sync.Mutex
	procs []pfProc
}

type pfProc struct {
	name string
	p    *testenv.Process
}

// pfSetup builds the server binary (once per test process) and starts a
// private Redis, the fake Stripe, the webhook receiver and, withMail,
// mailpit.
func pfSetup(t *testing.T, withMail bool) *pfHarness {
	t.Helper()
	h := &pfHarness{bin: testenv.Binary(t, "./cmd/server"), dir: t.TempDir()}
	h.redisURL = testenv.Redis(t)
	opt, err := tasks.RedisFromEnv(func(k string) string {
		if k == "REDIS_URL" {
			return h.redisURL
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	h.opt = opt
	h.client, h.insp = tasks.NewClient(opt), tasks.NewInspector(opt)
	t.Cleanup(func() { h.client.Close(); h.insp.Close() })
	h.stripe, h.hooks = pfStartStripe(t), pfStartReceiver(t)
	// A closed port when there is no mailpit: the SMTP adapter connects only
	// to send, and such a test sends no mail.
	smtpAddr := testenv.Addr(testenv.FreePort(t))
	if withMail {
		h.mail = testenv.StartMailpit(t)
		smtpAddr = h.mail.SMTPAddr()
	}
	h.smtpURL = "smtp://" + pfSMTPUser + ":" + pfSMTPPassword + "@" + smtpAddr + "?tls=none"
	reg, _ := json.Marshal(map[string]any{"partners": map[string]any{
		pfPartner: map[string]string{"url": h.hooks.srv.URL + "/hooks/escrow", "secret": pfWebhookSecret},
	}})
	h.registry = filepath.Join(h.dir, "partners.json")
	if err := os.WriteFile(h.registry, reg, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// startServer runs the production server binary with the harness's
// configuration plus extra, and waits until its worker has started.
func (h *pfHarness) startServer(t *testing.T, name string, extra map[string]string) *testenv.Process {
	t.Helper()
	vars := map[string]string{
		"REDIS_URL":                      h.redisURL,
		"LOG_LEVEL":                      "info",
		"WORKER_CONCURRENCY":             "8",
		"WORKER_SHUTDOWN_TIMEOUT":        "3s",
		"DEAD_LETTER_PATH":               filepath.Join(h.dir, "dead-letters-"+name+".jsonl"),
		"AUDIT_LOG_PATH":                 filepath.Join(h.dir, "audit.jsonl"),
		"SMTP_URL":                       h.smtpURL,
		"MAIL_FROM":                      pfMailFrom,
		"STRIPE_SECRET_KEY":              pfStripeKey,
		"STRIPE_API_BASE":                h.stripe.srv.URL,
		"WEBHOOK_ENDPOINTS_FILE":         h.registry,
		"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
	}
	for k, v := range extra {
		vars[k] = v
	}
	var env []string
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	p := testenv.Start(t, h.bin, env)
	h.mu.Lock()
	h.procs = append(h.procs, pfProc{name, p})
	h.mu.Unlock()
	if !p.WaitOutput(`"msg":"worker started"`, 30*time.Second) {
		p.Kill()
		t.Fatalf("server %s did not start; its output:\n%s", name, p.Output())
	}
	return p
}

// pfJob is one enqueued job and where its effect is counted.
type pfJob struct {
	id   string
	kind string // capture, refund, webhook, email, audit
	key  string // payment intent, webhook-id, Message-ID or eventId
}

// exactlyOnce reports whether the peer lets the job's effect be made
// exactly once (Stripe by Idempotency-Key and state, audit by eventId);
// webhooks and SMTP are at least once, deduplicated by the receiver.
func (j pfJob) exactlyOnce() bool {
	return j.kind == "capture" || j.kind == "refund" || j.kind == "audit"
}

// enqueueMix enqueues a mix of jobs of series and returns them. A job whose
// payment intent or webhook-id contains "slow" gets the slow peer delay.
func (h *pfHarness) enqueueMix(t *testing.T, series string, captures, refunds, hooks, mails, audits int, slow func(kind string, i int) bool) []pfJob {
	t.Helper()
	var jobs []pfJob
	add := func(kind, key string, task *tasks.Task, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("build %s job: %v", kind, err)
		}
		id, err := h.client.Enqueue(context.Background(), task)
		if err != nil {
			t.Fatalf("enqueue %s: %v", task.ID, err)
		}
		if kind == "email" {
			key = email.MessageID(id, "example.com")
		}
		jobs = append(jobs, pfJob{id: id, kind: kind, key: key})
	}
	tag := func(kind string, i int) string {
		if slow != nil && slow(kind, i) {
			return "slow"
		}
		return "fast"
	}
	for i := range max(captures, refunds, hooks, mails, audits) {
		if i < captures {
			pi := fmt.Sprintf("pi_pf%s%scap%d", series, tag("capture", i), i)
			h.stripe.addIntent(pi, "requires_capture", 10000+int64(i))
			task, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{
				TransactionID: fmt.Sprintf("esc-%s-c%d", series, i), PaymentIntentID: pi, AmountToCapture: 9000})
			add("capture", pi, task, err)
		}
		if i < refunds {
			pi := fmt.Sprintf("pi_pf%s%sref%d", series, tag("refund", i), i)
			h.stripe.addIntent(pi, "succeeded", 5000)
			task, err := tasks.NewStripeRefundPaymentTask(payloads.StripeRefundPayment{
				TransactionID: fmt.Sprintf("esc-%s-r%d", series, i), PaymentIntentID: pi, Amount: 1200, RefundID: "rf-" + pi, Reason: payloads.RefundRequestedByCustomer})
			add("refund", pi, task, err)
		}
		if i < hooks {
			ev := fmt.Sprintf("pf-%s-%s-evt-%d", series, tag("webhook", i), i)
			task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
				EventID: ev, PartnerID: pfPartner, TransactionID: fmt.Sprintf("esc-%s-w%d", series, i),
				PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: pfOccurredAt})
			add("webhook", ev, task, err)
		}
		if i < mails {
			tx := fmt.Sprintf("esc-%s-m%d", series, i)
			var task *tasks.Task
			var err error
			switch i % 4 {
			case 0:
				task, err = tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: tx, RecipientEmail: pfAddress("seller", series, i), Amount: 12500, Currency: "USD", RecipientName: "Sam"})
			case 1:
				task, err = tasks.NewSendRefundEmailTask(payloads.SendRefundEmail{TransactionID: tx, RecipientEmail: pfAddress("buyer", series, i), Amount: 1200, Currency: "EUR", Reason: "changed mind"})
			case 2:
				task, err = tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{TransactionID: tx, DisputeID: "dsp-" + tx, RecipientEmail: pfAddress("buyer", series, i), Reason: "not received"})
			default:
				task, err = tasks.NewSendPaymentConfirmedEmailTask(payloads.SendPaymentConfirmedEmail{TransactionID: tx, PaymentIntentID: fmt.Sprintf("pi_pfmail%d", i), RecipientEmail: pfAddress("buyer", series, i), Amount: 999, Currency: "GBP"})
			}
			add("email", "", task, err)
		}
		if i < audits {
			ev := fmt.Sprintf("pf-%s-aud-%d", series, i)
			task, err := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{
				EventID: ev, Actor: "ops", Action: "escrow.released", TransactionID: fmt.Sprintf("esc-%s-a%d", series, i), OccurredAt: pfOccurredAt})
			add("audit", ev, task, err)
		}
	}
	return jobs
}

// states returns the asynq state of every job.
func (h *pfHarness) states(t *testing.T, jobs []pfJob) map[string]string {
	t.Helper()
	out := make(map[string]string, len(jobs))
	for _, j := range jobs {
		st, err := h.insp.Status(j.id)
		if err != nil {
			out[j.id] = "error: " + err.Error()
			continue
		}
		out[j.id] = st.State
	}
	return out
}

// activeIDs lists the jobs asynq holds as active (leased to a worker).
func (h *pfHarness) activeIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, q := range []string{payloads.QueueCritical, payloads.QueueDefault, payloads.QueueLow} {
		infos, err := h.insp.Asynq().ListActiveTasks(q, asynq.PageSize(1000))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatalf("list active tasks of %s: %v", q, err)
		}
		for _, ti := range infos {
			ids = append(ids, ti.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// waitCompleted polls until every job is completed, calling each with the
// states of every poll, and fails with the stragglers after timeout.
func (h *pfHarness) waitCompleted(t *testing.T, jobs []pfJob, timeout time.Duration, each func(map[string]string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		st := h.states(t, jobs)
		if each != nil {
			each(st)
		}
		var left []string
		for _, j := range jobs {
			if st[j.id] != "completed" {
				left = append(left, j.id+" ("+st[j.id]+")")
			}
		}
		if len(left) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("after %s, %d of %d jobs are not completed: %v", timeout, len(left), len(jobs), left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pfWait polls cond every 20 ms until it holds or timeout passes.
func pfWait(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// effectsSoFar is the number of effects the Stripe fake and the receiver
// have seen.
func (h *pfHarness) effectsSoFar() int {
	captured, refunded, _, _ := h.stripe.effects()
	got, _ := h.hooks.deliveries()
	n := 0
	for _, m := range []map[string]int{captured, refunded, got} {
		for _, v := range m {
			n += v
		}
	}
	return n
}

// pfAuditLine is the part of an audit file line the tests read.
type pfAuditLine struct {
	EventID    string    `json:"eventId"`
	RecordedAt time.Time `json:"recordedAt"`
	file       int
}

// pfReadAudit reads audit JSON-lines files.
func pfReadAudit(t *testing.T, paths ...string) []pfAuditLine {
	t.Helper()
	var out []pfAuditLine
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var l pfAuditLine
			if err := json.Unmarshal([]byte(line), &l); err != nil || l.EventID == "" {
				t.Fatalf("audit file %s: unreadable line %q: %v", p, line, err)
			}
			l.file = i
			out = append(out, l)
		}
	}
	return out
}

// pfTally is the outcome of a run: jobs in, effects out, lost and doubled.
type pfTally struct {
	in, out, raw, redelivered int
	lost, doubled             []string
	byKind, redeliveredByKind map[string]int
}

func (p pfTally) String() string {
	return fmt.Sprintf("jobs in %d %v, effects out %d (raw %d), lost %d, doubled %d, redelivered at-least-once effects %d %v",
		p.in, p.byKind, p.out, p.raw, len(p.lost), len(p.doubled), p.redelivered, p.redeliveredByKind)
}

// tally counts each job's effect at its peer.
func (h *pfHarness) tally(t *testing.T, jobs []pfJob, auditPaths ...string) pfTally {
	t.Helper()
	captured, refunded, _, _ := h.stripe.effects()
	hooks, _ := h.hooks.deliveries()
	audits := map[string]int{}
	for _, l := range pfReadAudit(t, auditPaths...) {
		audits[l.EventID]++
	}
	mails := map[string]int{}
	if h.mail != nil {
		for _, m := range h.mail.Messages(t) {
			mails[m.MessageID]++
		}
	}
	res := pfTally{in: len(jobs), byKind: map[string]int{}, redeliveredByKind: map[string]int{}}
	for _, j := range jobs {
		var n int
		switch j.kind {
		case "capture":
			n = captured[j.key]
		case "refund":
			n = refunded[j.key]
		case "webhook":
			n = hooks[j.key]
		case "email":
			n = mails[j.key]
		case "audit":
			n = audits[j.key]
		}
		res.byKind[j.kind]++
		res.raw += n
		switch {
		case n == 0:
			res.lost = append(res.lost, j.id)
		case n > 1 && j.exactlyOnce():
			res.doubled = append(res.doubled, fmt.Sprintf("%s ×%d", j.id, n))
		}
		if n > 0 {
			res.out++
		}
		if n > 1 && !j.exactlyOnce() {
			res.redelivered += n - 1
			res.redeliveredByKind[j.kind] += n - 1
		}
	}
	return res
}

// scanLogs fails the test when the output of any server it ran shows a
// secret or a raw e-mail address from a payload. It checks that there was
// output to scan: every server logged its start and some job outcomes.
func (h *pfHarness) scanLogs(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	procs := slices.Clone(h.procs)
	h.mu.Unlock()
	secrets := map[string]string{
		"STRIPE_SECRET_KEY": pfStripeKey, "webhook secret": pfWebhookSecret,
		"webhook key": pfWebhookKeyB64, "SMTP password": pfSMTPPassword,
	}
	var lines, jobLines int
	for _, pr := range procs {
		out := pr.p.Output()
		lines += strings.Count(out, "\n")
		jobLines += strings.Count(out, `"msg":"job done"`) + strings.Count(out, `"msg":"job failed`)
		for what, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("server %s: its output contains the %s", pr.name, what)
			}
		}
		if m := pfEmailPattern.FindAllString(out, -1); len(m) > 0 {
			t.Errorf("server %s: its output contains %d raw e-mail addresses from payloads, e.g. %s", pr.name, len(m), payloads.MaskEmail(m[0]))
		}
	}
	if len(procs) == 0 || jobLines == 0 {
		t.Errorf("log scan: %d servers, %d job lines: nothing to scan", len(procs), jobLines)
	}
	t.Logf("log scan: %d servers, %d lines (%d job outcomes): no secret, no raw payload e-mail address", len(procs), lines, jobLines)
}

// ------------------------------------------------------------------ scenarios

// A worker killed with SIGKILL while it holds in-flight jobs loses none of
// them: asynq's recoverer in a second worker process requeues them once
// their lease has expired, and the second worker finishes every job. The
// Stripe effects are made exactly once (the redo finds them by state and
// Idempotency-Key), the audit events once (by eventId), and every webhook
// and e-mail arrives at least once with a stable webhook-id / Message-ID.
//
// asynq v0.26 leases a job for 30 s (rdb.LeaseDuration), extends the lease
// every 5 s heartbeat, and its recoverer — run by every server at start and
// then once a minute, not configurable — requeues a job whose lease expired
// more than 30 s ago. A job of a killed worker is thus recoverable 60 s after
// the last heartbeat at most. Starting the second worker right after the
// kill puts its second recoverer run 60 s after the kill: just after the
// earliest moment, without patching asynq.
func TestWorkerKilledMidJobLosesNothingAndDoublesNoEffect(t *testing.T) {
	h := pfSetup(t, true)
	const pause = 1500 * time.Millisecond
	h.stripe.setDelay(func(r *http.Request) time.Duration {
		if r.Method == http.MethodPost {
			return pause
		}
		return 0
	})
	h.hooks.setDelay(func(string) time.Duration { return pause })
	jobs := h.enqueueMix(t, "crash", 14, 10, 16, 10, 10, nil)

	a := h.startServer(t, "a", map[string]string{"WORKER_CONCURRENCY": "8"})
	pfWait(t, "worker a mid-run (effects done, requests held at Stripe and the partner)", 30*time.Second, func() bool {
		return h.effectsSoFar() >= 6 && h.stripe.inflight.Load() >= 1 && h.hooks.inflight.Load() >= 1 &&
			h.stripe.inflight.Load()+h.hooks.inflight.Load() >= 4
	})
	heldAtPeers := h.stripe.inflight.Load() + h.hooks.inflight.Load()
	a.Kill()
	killed := time.Now()
	orphans := h.activeIDs(t)
	before := h.states(t, jobs)
	done := 0
	for _, st := range before {
		if st == "completed" {
			done++
		}
	}
	t.Logf("SIGKILL: %d jobs completed, %d leased to the dead worker (%d requests held at the peers): %v", done, len(orphans), heldAtPeers, orphans)
	kinds := map[string]bool{}
	for _, id := range orphans {
		typ, _, _ := strings.Cut(id, ":")
		kinds[typ] = true
	}
	if !(kinds["stripe_capture_payment"] || kinds["stripe_refund_payment"]) || !kinds["webhook_escrow_status_changed"] {
		t.Fatalf("in flight at the kill: %v; want a Stripe job and a webhook among them, or the scenario tests little", orphans)
	}

	b := h.startServer(t, "b", nil)
	bUp := time.Since(killed)
	recoveredAt := map[string]time.Duration{}
	h.waitCompleted(t, jobs, 150*time.Second, func(st map[string]string) {
		for _, id := range orphans {
			if _, seen := recoveredAt[id]; !seen && st[id] != "active" {
				recoveredAt[id] = time.Since(killed)
			}
		}
	})
	var first, last time.Duration
	for _, d := range recoveredAt {
		if first == 0 || d < first {
			first = d
		}
		last = max(last, d)
	}
	t.Logf("recovery window: second worker up %.1f s after the kill; the dead worker's jobs requeued by its recoverer %.1f–%.1f s after the kill; every job completed %.1f s after the kill",
		bUp.Seconds(), first.Seconds(), last.Seconds(), time.Since(killed).Seconds())

	h.checkEffects(t, "crash", jobs)
	b.Signal(syscall.SIGTERM)
	if _, ok := b.Wait(15 * time.Second); !ok {
		t.Errorf("server b did not exit within 15 s of SIGTERM")
	}
	h.scanLogs(t)
}

// checkEffects tallies the effects of jobs at every peer and fails on a
// lost or doubled one, or a delivery the receiver refused.
func (h *pfHarness) checkEffects(t *testing.T, scenario string, jobs []pfJob) {
	t.Helper()
	res := h.tally(t, jobs, filepath.Join(h.dir, "audit.jsonl"))
	_, _, posts, replays := h.stripe.effects()
	_, bad := h.hooks.deliveries()
	t.Logf("%s: %s; Stripe POSTs %d (%d answered from the Idempotency-Key store)", scenario, res, posts, replays)
	if len(res.lost) > 0 || len(res.doubled) > 0 {
		t.Errorf("got lost %v, doubled %v; want none", res.lost, res.doubled)
	}
	if len(bad) > 0 {
		t.Errorf("receiver refused %d deliveries: %v", len(bad), bad)
	}
	pfCheckStableKeys(t, h, jobs)
}

// pfCheckStableKeys checks that the Stripe POSTs of a job, on every
// attempt, carried one and the same Idempotency-Key.
func pfCheckStableKeys(t *testing.T, h *pfHarness, jobs []pfJob) {
	t.Helper()
	for _, j := range jobs {
		if j.kind != "capture" && j.kind != "refund" {
			continue
		}
		keys := h.stripe.keysOf(j.key)
		slices.Sort(keys)
		if keys = slices.Compact(keys); len(keys) != 1 || keys[0] == "" {
			t.Errorf("%s: its Stripe POSTs carried Idempotency-Keys %q, want one and the same on every attempt", j.id, keys)
		}
	}
}

// SIGTERM stops a worker within WORKER_SHUTDOWN_TIMEOUT even with handlers
// slower than that in flight: the jobs that finish in time are completed,
// the others go back to the queue (none is left leased to the dead process
// for the lease recoverer), and a second worker finishes them — long before
// a lease recovery could have (≥ 60 s).
func TestSIGTERMMidRunReturnsUnfinishedJobsToTheQueue(t *testing.T) {
	h := pfSetup(t, true)
	const timeout, fast, slow = 3 * time.Second, 700 * time.Millisecond, 6 * time.Second
	h.stripe.setDelay(func(r *http.Request) time.Duration {
		switch {
		case r.Method != http.MethodPost:
			return 0
		case strings.Contains(r.URL.Path+r.PostForm.Get("payment_intent"), "slow"):
			return slow
		}
		return fast
	})
	h.hooks.setDelay(func(id string) time.Duration {
		if strings.Contains(id, "slow") {
			return slow
		}
		return fast
	})
	jobs := h.enqueueMix(t, "term", 10, 6, 12, 8, 8, func(kind string, i int) bool { return i%2 == 0 })

	a := h.startServer(t, "a", map[string]string{"WORKER_CONCURRENCY": "24", "WORKER_SHUTDOWN_TIMEOUT": timeout.String()})
	pfWait(t, "worker a with slow requests in flight", 30*time.Second, func() bool {
		return h.effectsSoFar() >= 8 && h.stripe.inflight.Load() >= 2 && h.hooks.inflight.Load() >= 2
	})
	inflight := h.activeIDs(t)
	a.Signal(syscall.SIGTERM)
	sent := time.Now()
	err, exited := a.Wait(timeout + 5*time.Second)
	stopped := time.Since(sent)
	if !exited {
		t.Fatalf("server a did not exit within %s of SIGTERM (WORKER_SHUTDOWN_TIMEOUT %s)", timeout+5*time.Second, timeout)
	}
	if err != nil {
		t.Errorf("server a exited with %v after SIGTERM, want status 0", err)
	}
	after := h.states(t, jobs)
	var returned, finished []string
	for _, id := range inflight {
		switch after[id] {
		case "completed":
			finished = append(finished, id)
		case "pending":
			returned = append(returned, id)
		default:
			t.Errorf("in-flight job %s is %q after the shutdown, want completed or pending (back in the queue)", id, after[id])
		}
	}
	if left := h.activeIDs(t); len(left) > 0 {
		t.Errorf("after the shutdown, %d jobs are still leased to the dead worker: %v", len(left), left)
	}
	completed := 0
	for _, st := range after {
		if st == "completed" {
			completed++
		}
	}
	t.Logf("SIGTERM with %d jobs in flight: exited after %.2f s (timeout %s); of those, %d finished and %d went back to the queue; %d of %d jobs completed; %d 'Quitting worker' lines",
		len(inflight), stopped.Seconds(), timeout, len(finished), len(returned), completed, len(jobs), strings.Count(a.Output(), "Quitting worker"))
	if len(returned) == 0 {
		t.Errorf("no in-flight job went back to the queue: the slow handlers (%s) did not outlast the %s timeout", slow, timeout)
	}

	b := h.startServer(t, "b", map[string]string{"WORKER_CONCURRENCY": "24"})
	took := h.waitCompleted(t, jobs, 40*time.Second, nil)
	t.Logf("second worker completed the rest within %.1f s", took.Seconds())

	h.checkEffects(t, "sigterm", jobs)
	b.Signal(syscall.SIGTERM)
	if _, ok := b.Wait(timeout + 5*time.Second); !ok {
		t.Errorf("server b did not exit within %s of SIGTERM", timeout+5*time.Second)
	}
	h.scanLogs(t)
}

// Three worker processes on one Redis run 20,000 jobs, each handler exactly
// once. The jobs are audit events (the cheapest handler: a line in a file),
// spread evenly over the three queues and all enqueued before the workers
// start, so the order in which they complete shows the queue weights
// (critical 6, default 3, low 1): critical leads the first 30 % of
// completions, then default, then low, and the queues drain in that order.
func TestThreeWorkersRun20000JobsOnceEachByQueueWeight(t *testing.T) {
	h := pfSetup(t, false)
	const total, workers = 20000, 3
	queues := []string{payloads.QueueCritical, payloads.QueueDefault, payloads.QueueLow}
	queueOf := map[string]string{} // eventId → queue
	ids := make([]string, total)
	for i := range total {
		q := queues[i%len(queues)]
		ids[i] = fmt.Sprintf("pf-load-%s-%d", q, i)
		queueOf[ids[i]] = q
	}

	// Enqueue through the typed constructor (validation, job ID, retention),
	// overriding only the queue: the handler is the same in every queue.
	raw := asynq.NewClient(h.opt)
	defer raw.Close()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < total; i += 16 {
				task, err := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{
					EventID: ids[i], Actor: "loadgen", Action: "escrow.funded", OccurredAt: pfOccurredAt})
				if err == nil {
					_, err = raw.EnqueueContext(context.Background(), task.Task, asynq.Queue(queueOf[ids[i]]))
				}
				if err != nil {
					errs <- fmt.Errorf("enqueue %s: %w", ids[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	perQueue := map[string]int{}
	for _, q := range queueOf {
		perQueue[q]++
	}
	t.Logf("enqueued %d jobs (critical %d, default %d, low %d) in %.1f s", total,
		perQueue[payloads.QueueCritical], perQueue[payloads.QueueDefault], perQueue[payloads.QueueLow], time.Since(start).Seconds())

	paths := make([]string, workers)
	procs := make([]*testenv.Process, workers)
	for w := range workers {
		paths[w] = filepath.Join(h.dir, fmt.Sprintf("audit-%d.jsonl", w+1))
		procs[w] = h.startServer(t, fmt.Sprintf("w%d", w+1), map[string]string{"AUDIT_LOG_PATH": paths[w], "WORKER_CONCURRENCY": "50"})
	}
	start = time.Now()
	deadline := start.Add(150 * time.Second)
	for {
		stats, err := h.insp.Stats()
		if err != nil {
			t.Fatal(err)
		}
		completed, archived := 0, 0
		for _, s := range stats {
			completed += s.Completed
			archived += s.Archived
		}
		if archived > 0 {
			t.Fatalf("%d jobs archived, want none", archived)
		}
		if completed == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d jobs completed", time.Since(start), completed, total)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, p := range procs {
		p.Signal(syscall.SIGTERM)
	}
	for i, p := range procs {
		if _, ok := p.Wait(15 * time.Second); !ok {
			t.Errorf("server w%d did not exit within 15 s of SIGTERM", i+1)
		}
	}

	// Exactly once, twice over: every handler run is one "job done" log line
	// (across processes), and every event one line in the audit files.
	runs := map[string]int{}
	perProc := make([]int, workers)
	for i, p := range procs {
		for _, line := range strings.Split(p.Output(), "\n") {
			if !strings.Contains(line, `"msg":"job done"`) {
				continue
			}
			var l struct {
				TaskID string `json:"task_id"`
			}
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("server w%d: log line %q: %v", i+1, line, err)
			}
			runs[l.TaskID]++
			perProc[i]++
		}
	}
	lines := pfReadAudit(t, paths...)
	written := map[string]int{}
	perFile := make([]int, workers)
	for _, l := range lines {
		written[l.EventID]++
		perFile[l.file]++
	}
	var lost, doubled []string
	for _, id := range ids {
		jobID := "audit_log_created:audit-" + id
		switch {
		case runs[jobID] == 0 || written[id] == 0:
			lost = append(lost, fmt.Sprintf("%s (runs %d, lines %d)", id, runs[jobID], written[id]))
		case runs[jobID] > 1 || written[id] > 1:
			doubled = append(doubled, fmt.Sprintf("%s (runs %d, lines %d)", id, runs[jobID], written[id]))
		}
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].RecordedAt.Before(lines[j].RecordedAt) })
	span := lines[len(lines)-1].RecordedAt.Sub(lines[0].RecordedAt)
	t.Logf("many workers: jobs in %d, handler runs %d, audit lines %d (per process %v runs, %v lines), lost %d, doubled %d; %.0f jobs/s over %.1f s",
		total, len(runs), len(lines), perProc, perFile, len(lost), len(doubled), float64(len(lines))/span.Seconds(), span.Seconds())
	if len(lost) > 0 || len(doubled) > 0 || len(runs) != total || len(lines) != total {
		t.Errorf("got %d distinct runs and %d lines for %d jobs; lost %d (%v), doubled %d (%v); want each job run and written once",
			len(runs), len(lines), total, len(lost), pfFirst(lost, 5), len(doubled), pfFirst(doubled, 5))
	}
	for w, n := range perProc {
		if n == 0 {
			t.Errorf("server w%d ran no job: the three workers did not share the load", w+1)
		}
	}

	// Queue weights: shares of the first 30 % of completions, and the
	// position at which each queue's last job completed.
	head := len(lines) * 30 / 100
	share := map[string]float64{}
	lastAt := map[string]int{}
	for i, l := range lines {
		q := queueOf[l.EventID]
		if i < head {
			share[q] += 1 / float64(head)
		}
		lastAt[q] = i
	}
	t.Logf("first 30%% of completions: critical %.2f, default %.2f, low %.2f (weights 6:3:1 → 0.60, 0.30, 0.10); queue drained at completion #%d critical, #%d default, #%d low",
		share[payloads.QueueCritical], share[payloads.QueueDefault], share[payloads.QueueLow],
		lastAt[payloads.QueueCritical]+1, lastAt[payloads.QueueDefault]+1, lastAt[payloads.QueueLow]+1)
	if !(share[payloads.QueueCritical] > share[payloads.QueueDefault] && share[payloads.QueueDefault] > share[payloads.QueueLow]) {
		t.Errorf("first 30%% of completions: got shares critical %.2f, default %.2f, low %.2f; want critical > default > low",
			share[payloads.QueueCritical], share[payloads.QueueDefault], share[payloads.QueueLow])
	}
	if !(lastAt[payloads.QueueCritical] < lastAt[payloads.QueueDefault] && lastAt[payloads.QueueDefault] < lastAt[payloads.QueueLow]) {
		t.Errorf("queues drained at completions critical #%d, default #%d, low #%d; want critical first, then default, then low",
			lastAt[payloads.QueueCritical]+1, lastAt[payloads.QueueDefault]+1, lastAt[payloads.QueueLow]+1)
	}
	h.scanLogs(t)
}

func pfFirst(s []string, n int) []string { return s[:min(n, len(s))] }
