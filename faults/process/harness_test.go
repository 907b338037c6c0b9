package process_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// Secrets the servers are given; none may ever appear in their output.
const (
	stripeKey     = "sk_test_pfNeverLogThisStripeKey0123456789"
	webhookKeyB64 = "cGYtd2ViaG9vay1zaWduaW5nLWtleS0zMi1ieXRlcyE=" // "pf-webhook-signing-key-32-bytes!"
	webhookSecret = "whsec_" + webhookKeyB64
	smtpUser      = "pf-relay"
	smtpPassword  = "pf-smtp-Pa55w0rd-neverLogged"
	mailFrom      = "ops@example.com"
	partner       = "pf-partner"
	occurredAt    = "2026-11-29T10:00:00Z"
)

// emailPattern matches every recipient address the tests put in payloads
// (address), unmasked. A masked one ("p***@…") does not match.
var emailPattern = regexp.MustCompile(`pf-(?:buyer|seller)-[a-z0-9-]+@customers\.example\.com`)

func address(role, series string, i int) string {
	return fmt.Sprintf("pf-%s-%s-%d@customers.example.com", role, series, i)
}

// -------------------------------------------------------------------- harness

// harness is one Redis, the peers, and the server processes of one test.
type harness struct {
	bin      string
	redisURL string
	opt      asynq.RedisConnOpt
	client   *tasks.Client
	insp     *tasks.Inspector
	stripe   *escrowtest.Stripe
	hooks    *escrowtest.Receiver
	mail     *peertest.Mailpit // nil unless asked for
	smtpURL  string
	dir      string
	registry string

	mu    sync.Mutex
	procs []proc
}

type proc struct {
	name string
	p    *peertest.Process
}

// pfSetup builds the server binary (once per test process) and starts a
// private Redis, the fake Stripe, the webhook receiver and, withMail,
// mailpit.
func setup(t *testing.T, withMail bool) *harness {
	t.Helper()
	h := &harness{bin: peertest.Binary(t, "./cmd/server"), dir: t.TempDir()}
	h.redisURL = peertest.Redis(t)
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
	h.stripe, h.hooks = escrowtest.StartStripe(t, escrowtest.StripeConfig{Secret: stripeKey}), escrowtest.StartReceiver(t, webhookSecret)
	// A closed port when there is no mailpit: the SMTP adapter connects only
	// to send, and such a test sends no mail.
	smtpAddr := peertest.Addr(peertest.FreePort(t))
	if withMail {
		h.mail = peertest.StartMailpit(t)
		smtpAddr = h.mail.SMTPAddr()
	}
	h.smtpURL = "smtp://" + smtpUser + ":" + smtpPassword + "@" + smtpAddr + "?tls=none"
	reg, _ := json.Marshal(map[string]any{"partners": map[string]any{
		partner: map[string]string{"url": h.hooks.URL + "/hooks/escrow", "secret": webhookSecret},
	}})
	h.registry = filepath.Join(h.dir, "partners.json")
	if err := os.WriteFile(h.registry, reg, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// startServer runs the production server binary with the harness's
// configuration plus extra, and waits until its worker has started.
func (h *harness) startServer(t *testing.T, name string, extra map[string]string) *peertest.Process {
	t.Helper()
	vars := map[string]string{
		"REDIS_URL":                      h.redisURL,
		"LOG_LEVEL":                      "info",
		"WORKER_CONCURRENCY":             "8",
		"WORKER_SHUTDOWN_TIMEOUT":        "3s",
		"DEAD_LETTER_PATH":               filepath.Join(h.dir, "dead-letters-"+name+".jsonl"),
		"AUDIT_LOG_PATH":                 filepath.Join(h.dir, "audit.jsonl"),
		"SMTP_URL":                       h.smtpURL,
		"MAIL_FROM":                      mailFrom,
		"STRIPE_SECRET_KEY":              stripeKey,
		"STRIPE_API_BASE":                h.stripe.URL,
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
	p := peertest.Start(t, h.bin, env)
	h.mu.Lock()
	h.procs = append(h.procs, proc{name, p})
	h.mu.Unlock()
	if !p.WaitOutput(`"msg":"worker started"`, 30*time.Second) {
		p.Kill()
		t.Fatalf("server %s did not start; its output:\n%s", name, p.Output())
	}
	return p
}

// job is one enqueued job and where its effect is counted.
type job struct {
	id   string
	kind string // capture, refund, webhook, email, audit
	key  string // payment intent, webhook-id, Message-ID or eventId
}

// exactlyOnce reports whether the peer lets the job's effect be made
// exactly once (Stripe by Idempotency-Key and state, audit by eventId);
// webhooks and SMTP are at least once, deduplicated by the receiver.
func (j job) exactlyOnce() bool {
	return j.kind == "capture" || j.kind == "refund" || j.kind == "audit"
}

// enqueueMix enqueues a mix of jobs of series and returns them. A job whose
// payment intent or webhook-id contains "slow" gets the slow peer delay.
func (h *harness) enqueueMix(t *testing.T, series string, captures, refunds, hooks, mails, audits int, slow func(kind string, i int) bool) []job {
	t.Helper()
	var jobs []job
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
		jobs = append(jobs, job{id: id, kind: kind, key: key})
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
			h.stripe.AddIntent(pi, "requires_capture", 10000+int64(i))
			task, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{
				TransactionID: fmt.Sprintf("esc-%s-c%d", series, i), PaymentIntentID: pi, AmountToCapture: 9000})
			add("capture", pi, task, err)
		}
		if i < refunds {
			pi := fmt.Sprintf("pi_pf%s%sref%d", series, tag("refund", i), i)
			h.stripe.AddIntent(pi, "succeeded", 5000)
			task, err := tasks.NewStripeRefundPaymentTask(payloads.StripeRefundPayment{
				TransactionID: fmt.Sprintf("esc-%s-r%d", series, i), PaymentIntentID: pi, Amount: 1200, RefundID: "rf-" + pi, Reason: payloads.RefundRequestedByCustomer})
			add("refund", pi, task, err)
		}
		if i < hooks {
			ev := fmt.Sprintf("pf-%s-%s-evt-%d", series, tag("webhook", i), i)
			task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
				EventID: ev, PartnerID: partner, TransactionID: fmt.Sprintf("esc-%s-w%d", series, i),
				PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: occurredAt})
			add("webhook", ev, task, err)
		}
		if i < mails {
			tx := fmt.Sprintf("esc-%s-m%d", series, i)
			var task *tasks.Task
			var err error
			switch i % 4 {
			case 0:
				task, err = tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: tx, RecipientEmail: address("seller", series, i), Amount: 12500, Currency: "USD", RecipientName: "Sam"})
			case 1:
				task, err = tasks.NewSendRefundEmailTask(payloads.SendRefundEmail{TransactionID: tx, RecipientEmail: address("buyer", series, i), Amount: 1200, Currency: "EUR", Reason: "changed mind"})
			case 2:
				task, err = tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{TransactionID: tx, DisputeID: "dsp-" + tx, RecipientEmail: address("buyer", series, i), Reason: "not received"})
			default:
				task, err = tasks.NewSendPaymentConfirmedEmailTask(payloads.SendPaymentConfirmedEmail{TransactionID: tx, PaymentIntentID: fmt.Sprintf("pi_pfmail%d", i), RecipientEmail: address("buyer", series, i), Amount: 999, Currency: "GBP"})
			}
			add("email", "", task, err)
		}
		if i < audits {
			ev := fmt.Sprintf("pf-%s-aud-%d", series, i)
			task, err := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{
				EventID: ev, Actor: "ops", Action: "escrow.released", TransactionID: fmt.Sprintf("esc-%s-a%d", series, i), OccurredAt: occurredAt})
			add("audit", ev, task, err)
		}
	}
	return jobs
}

// states returns the asynq state of every job.
func (h *harness) states(t *testing.T, jobs []job) map[string]string {
	t.Helper()
	out := make(map[string]string, len(jobs))
	for _, j := range jobs {
		st, err := h.insp.Status(context.Background(), j.id)
		if err != nil {
			out[j.id] = "error: " + err.Error()
			continue
		}
		out[j.id] = st.State
	}
	return out
}

// activeIDs lists the jobs asynq holds as active (leased to a worker).
func (h *harness) activeIDs(t *testing.T) []string {
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
func (h *harness) waitCompleted(t *testing.T, jobs []job, timeout time.Duration, each func(map[string]string)) time.Duration {
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

// effectsSoFar is the number of effects the Stripe fake and the receiver
// have seen.
func (h *harness) effectsSoFar() int {
	captured, refunded, _, _ := h.stripe.Effects()
	got, _ := h.hooks.Deliveries()
	n := 0
	for _, m := range []map[string]int{captured, refunded, got} {
		for _, v := range m {
			n += v
		}
	}
	return n
}

// auditLine is the part of an audit file line the tests read.

type auditLine struct {
	EventID    string    `json:"eventId"`
	RecordedAt time.Time `json:"recordedAt"`
	file       int
}

// pfReadAudit reads audit JSON-lines files.
func readAudit(t *testing.T, paths ...string) []auditLine {
	t.Helper()
	var out []auditLine
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
			var l auditLine
			if err := json.Unmarshal([]byte(line), &l); err != nil || l.EventID == "" {
				t.Fatalf("audit file %s: unreadable line %q: %v", p, line, err)
			}
			l.file = i
			out = append(out, l)
		}
	}
	return out
}

// outcome is the outcome of a run: jobs in, effects out, lost and doubled.
type outcome struct {
	in, out, raw, redelivered int
	lost, doubled             []string
	byKind, redeliveredByKind map[string]int
}

func (p outcome) String() string {
	return fmt.Sprintf("jobs in %d %v, effects out %d (raw %d), lost %d, doubled %d, redelivered at-least-once effects %d %v",
		p.in, p.byKind, p.out, p.raw, len(p.lost), len(p.doubled), p.redelivered, p.redeliveredByKind)
}

// tally counts each job's effect at its peer.
func (h *harness) tally(t *testing.T, jobs []job, auditPaths ...string) outcome {
	t.Helper()
	captured, refunded, _, _ := h.stripe.Effects()
	hooks, _ := h.hooks.Deliveries()
	audits := map[string]int{}
	for _, l := range readAudit(t, auditPaths...) {
		audits[l.EventID]++
	}
	mails := map[string]int{}
	if h.mail != nil {
		for _, m := range h.mail.Messages(t) {
			mails[m.MessageID]++
		}
	}
	res := outcome{in: len(jobs), byKind: map[string]int{}, redeliveredByKind: map[string]int{}}
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
func (h *harness) scanLogs(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	procs := slices.Clone(h.procs)
	h.mu.Unlock()
	secrets := map[string]string{
		"STRIPE_SECRET_KEY": stripeKey, "webhook secret": webhookSecret,
		"webhook key": webhookKeyB64, "SMTP password": smtpPassword,
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
		if m := emailPattern.FindAllString(out, -1); len(m) > 0 {
			t.Errorf("server %s: its output contains %d raw e-mail addresses from payloads, e.g. %s", pr.name, len(m), payloads.MaskEmail(m[0]))
		}
	}
	if len(procs) == 0 || jobLines == 0 {
		t.Errorf("log scan: %d servers, %d job lines: nothing to scan", len(procs), jobLines)
	}
	t.Logf("log scan: %d servers, %d lines (%d job outcomes): no secret, no raw payload e-mail address", len(procs), lines, jobLines)
}

// checkEffects proves that no job is left for a rerun, tallies the effects
// of jobs at every peer and fails on a lost or doubled one, or a delivery
// the receiver refused.
func (h *harness) checkEffects(t *testing.T, scenario string, jobs []job) {
	t.Helper()
	// The count is final only when no job is active or leased: asynq's
	// lease recoverer could otherwise still run one again (30 s–2 min later).
	escrowtest.NoLeases(t, h.opt)
	res := h.tally(t, jobs, filepath.Join(h.dir, "audit.jsonl"))
	_, _, posts, replays := h.stripe.Effects()
	_, bad := h.hooks.Deliveries()
	t.Logf("%s: %s; Stripe POSTs %d (%d answered from the Idempotency-Key store)", scenario, res, posts, replays)
	if len(res.lost) > 0 || len(res.doubled) > 0 {
		t.Errorf("got lost %v, doubled %v; want none", res.lost, res.doubled)
	}
	if len(bad) > 0 {
		t.Errorf("receiver refused %d deliveries: %v", len(bad), bad)
	}
	checkStableKeys(t, h, jobs)
}

// pfCheckStableKeys checks that the Stripe POSTs of a job, on every
// attempt, carried one and the same Idempotency-Key.
func checkStableKeys(t *testing.T, h *harness, jobs []job) {
	t.Helper()
	for _, j := range jobs {
		if j.kind != "capture" && j.kind != "refund" {
			continue
		}
		keys := h.stripe.KeysOf(j.key)
		slices.Sort(keys)
		if keys = slices.Compact(keys); len(keys) != 1 || keys[0] == "" {
			t.Errorf("%s: its Stripe POSTs carried Idempotency-Keys %q, want one and the same on every attempt", j.id, keys)
		}
	}
}

// SIGTERM stops a worker within WORKER_SHUTDOWN_TIMEOUT even with handlers
// slower than that in flight: the jobs that finish in time are completed,
