// Package escrowjobs_test is the end-to-end suite of the core: the nine job
// types through their constructors, a real Redis, the real worker (asynq
// servers, retry gate, dead-letter log) and the real handlers, with
// recording adapters standing in for the peers (the peers themselves are
// tested in e2e_test.go and in their packages).
package escrowjobs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/internal/testenv"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
)

// recorder is every adapter at once: it records what reached it, when, and
// fails as told.
type recorder struct {
	mu     sync.Mutex
	calls  map[string][]time.Time // job ID → attempt start times
	data   map[string]any         // job ID → last payload seen
	failFn func(id string, attempt int) error
	seen   chan string
}

func newRecorder() *recorder {
	return &recorder{calls: map[string][]time.Time{}, data: map[string]any{}, seen: make(chan string, 100)}
}

func (r *recorder) record(id string, v any) error {
	r.mu.Lock()
	r.calls[id] = append(r.calls[id], time.Now())
	r.data[id] = v
	n := len(r.calls[id])
	fail := r.failFn
	r.mu.Unlock()
	var err error
	if fail != nil {
		err = fail(id, n)
	}
	r.seen <- id
	return err
}

func (r *recorder) attempts(id string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.calls[id]...)
}

func (r *recorder) payload(id string) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.data[id]
}

func (r *recorder) SendMail(ctx context.Context, m handlers.Mail) error {
	return r.record(m.ID, m.Data)
}
func (r *recorder) Capture(ctx context.Context, c handlers.Capture) (handlers.PaymentResult, error) {
	return handlers.PaymentResult{ID: "ch_1"}, r.record(c.IdempotencyKey, c)
}
func (r *recorder) Refund(ctx context.Context, c handlers.Refund) (handlers.PaymentResult, error) {
	return handlers.PaymentResult{ID: "re_1"}, r.record(c.IdempotencyKey, c)
}
func (r *recorder) Send(ctx context.Context, d handlers.Delivery) error {
	return r.record("webhook_escrow_status_changed:event-"+d.ID, d)
}
func (r *recorder) WriteAudit(ctx context.Context, e payloads.AuditLogCreated) error {
	return r.record("audit_log_created:audit-"+e.EventID, e)
}

type env struct {
	redis  asynq.RedisConnOpt
	url    string
	client *tasks.Client
	insp   *tasks.Inspector
	dl     *deadletter.File
	rec    *recorder
	w      *worker.Worker
}

// setup starts a private Redis and a worker with recording adapters.
func setup(t *testing.T, mw ...asynq.MiddlewareFunc) *env {
	t.Helper()
	url := testenv.Redis(t)
	opt, err := tasks.RedisFromEnv(func(k string) string {
		if k == "REDIS_URL" {
			return url
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{redis: opt, url: url, client: tasks.NewClient(opt), insp: tasks.NewInspector(opt), rec: newRecorder()}
	t.Cleanup(func() { e.client.Close(); e.insp.Close() })
	if e.dl, err = deadletter.OpenFile(filepath.Join(t.TempDir(), "dead-letters.jsonl")); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mux, err := handlers.NewServeMux(handlers.Deps{Mailer: e.rec, Payments: e.rec, Sender: e.rec, Audit: e.rec, Enqueuer: e.client, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mw {
		mux.Use(m)
	}
	e.w, err = worker.New(worker.Config{Redis: opt, Concurrency: 8, FetchLoops: 2, DeadLetters: e.dl, Logger: log, ShutdownTimeout: 2 * time.Second}, mux)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.w.Shutdown)
	return e
}

// built carries a constructor's two results into enqueue.
type builtTask struct {
	task *tasks.Task
	err  error
}

func built(task *tasks.Task, err error) builtTask { return builtTask{task, err} }

func (e *env) enqueue(t *testing.T, b builtTask) string {
	t.Helper()
	if b.err != nil {
		t.Fatalf("build task: %v", b.err)
	}
	task := b.task
	id, err := e.client.Enqueue(context.Background(), task)
	if err != nil {
		t.Fatalf("enqueue %s: %v", task.ID, err)
	}
	return id
}

// waitState polls the job's state until it is want or timeout passes.
func (e *env) waitState(t *testing.T, id, want string, timeout time.Duration) tasks.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var j tasks.Job
	var err error
	for time.Now().Before(deadline) {
		if j, err = e.insp.Status(id); err == nil && j.State == want {
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s: got state %q (err %v), want %q within %s", id, j.State, err, want, timeout)
	return j
}

const now = "2026-11-29T10:00:00Z"

func TestNineTypesReachTheirHandlerWithTheExactPayload(t *testing.T) {
	e := setup(t)
	release := payloads.SendReleaseEmail{TransactionID: "esc-1", RecipientEmail: "seller@example.com", Amount: 12345, Currency: "USD", RecipientName: "Sam"}
	refund := payloads.SendRefundEmail{TransactionID: "esc-2", RecipientEmail: "buyer@example.com", Amount: 500, Currency: "EUR", Reason: "changed mind"}
	dispute := payloads.SendDisputeEmail{TransactionID: "esc-3", DisputeID: "dsp-3", RecipientEmail: "seller@example.com", Reason: "not received"}
	paid := payloads.SendPaymentConfirmedEmail{TransactionID: "esc-4", PaymentIntentID: "pi_4", RecipientEmail: "buyer@example.com", Amount: 999, Currency: "GBP"}
	capture := payloads.StripeCapturePayment{TransactionID: "esc-5", PaymentIntentID: "pi_5", AmountToCapture: 700}
	refundPay := payloads.StripeRefundPayment{TransactionID: "esc-6", PaymentIntentID: "pi_6", Amount: 300, Reason: payloads.RefundDuplicate}
	hook := payloads.WebhookEscrowStatusChanged{EventID: "evt-7", PartnerID: "acme", TransactionID: "esc-7", PreviousStatus: "funded", Status: "released", OccurredAt: now}
	notify := payloads.NotifyDisputeResolved{DisputeID: "dsp-8", TransactionID: "esc-8", Resolution: payloads.ResolutionSplit, BuyerEmail: "b8@example.com", SellerEmail: "s8@example.com", PartnerID: "acme"}
	audit := payloads.AuditLogCreated{EventID: "aud-9", Actor: "ops", Action: "escrow.released", TransactionID: "esc-9", OccurredAt: now, Metadata: []byte(`{"ip":"10.0.0.1"}`)}

	type check struct {
		id   string
		want any
	}
	var checks []check
	must := func(task *tasks.Task, err error) *tasks.Task {
		if err != nil {
			t.Fatalf("build task: %v", err)
		}
		return task
	}
	add := func(want func(id string) any, task *tasks.Task) {
		id := e.enqueue(t, built(task, nil))
		checks = append(checks, check{id, want(id)})
	}
	same := func(p any) func(string) any { return func(string) any { return p } }
	add(same(release), must(tasks.NewSendReleaseEmailTask(release)))
	add(same(refund), must(tasks.NewSendRefundEmailTask(refund)))
	add(same(dispute), must(tasks.NewSendDisputeEmailTask(dispute)))
	add(same(paid), must(tasks.NewSendPaymentConfirmedEmailTask(paid)))
	add(func(id string) any {
		return handlers.Capture{IdempotencyKey: id, TransactionID: "esc-5", PaymentIntentID: "pi_5", Amount: 700}
	}, must(tasks.NewStripeCapturePaymentTask(capture)))
	add(func(id string) any {
		return handlers.Refund{IdempotencyKey: id, TransactionID: "esc-6", PaymentIntentID: "pi_6", Amount: 300, Reason: "duplicate"}
	}, must(tasks.NewStripeRefundPaymentTask(refundPay)))
	add(func(string) any {
		return handlers.Delivery{ID: "evt-7", PartnerID: "acme",
			Body: []byte(`{"type":"escrow.status_changed","timestamp":"2026-11-29T10:00:00Z","data":{"eventId":"evt-7","transactionId":"esc-7","previousStatus":"funded","status":"released"}}`)}
	}, must(tasks.NewWebhookEscrowStatusChangedTask(hook)))
	add(same(audit), must(tasks.NewAuditLogCreatedTask(audit)))
	notifyID := e.enqueue(t, built(tasks.NewNotifyDisputeResolvedTask(notify)))

	for _, c := range checks {
		j := e.waitState(t, c.id, "completed", 10*time.Second)
		if got := e.rec.payload(c.id); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: handler got %#v, want %#v", c.id, got, c.want)
		}
		if j.Attempts != 1 {
			t.Errorf("%s: got %d attempts, want 1", c.id, j.Attempts)
		}
	}
	// The fan-out creates two dispute e-mails and the partner webhook.
	e.waitState(t, notifyID, "completed", 10*time.Second)
	for _, to := range []string{"b8@example.com", "s8@example.com"} {
		id := "send_dispute_email:dispute-dsp-8-resolved-" + payloads.RecipientHash(to)
		e.waitState(t, id, "completed", 10*time.Second)
		got, ok := e.rec.payload(id).(payloads.SendDisputeEmail)
		if !ok || got.RecipientEmail != to || got.DisputeID != "dsp-8" {
			t.Errorf("fan-out e-mail %s: got %#v", id, e.rec.payload(id))
		}
	}
	e.waitState(t, "webhook_escrow_status_changed:event-dispute-dsp-8-resolved", "completed", 10*time.Second)
}

func TestConstructorsNameEveryBadFieldAndEnqueueNothing(t *testing.T) {
	cases := []struct {
		name  string
		build func() (*tasks.Task, error)
		want  []string
	}{
		{"release: bad email, amount, currency", func() (*tasks.Task, error) {
			return tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: "esc-1", RecipientEmail: "nope", Amount: 0, Currency: "usd"})
		}, []string{"recipientEmail", "amount", "currency"}},
		{"release: header injection in name", func() (*tasks.Task, error) {
			return tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: "esc-1", RecipientEmail: "a@example.com", Amount: 1, Currency: "USD", RecipientName: "x\r\nBcc: victim@example.com"})
		}, []string{"recipientName"}},
		{"email with CRLF", func() (*tasks.Task, error) {
			return tasks.NewSendRefundEmailTask(payloads.SendRefundEmail{TransactionID: "esc-1", RecipientEmail: "a@example.com\r\nBcc: x@example.com", Amount: 1, Currency: "USD"})
		}, []string{"recipientEmail"}},
		{"dispute: missing everything", func() (*tasks.Task, error) {
			return tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{})
		}, []string{"transactionId", "disputeId", "recipientEmail", "reason"}},
		{"capture: not a payment intent", func() (*tasks.Task, error) {
			return tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc/1", PaymentIntentID: "ch_123", AmountToCapture: -5})
		}, []string{"transactionId", "paymentIntentId", "amountToCapture"}},
		{"refund: bad reason", func() (*tasks.Task, error) {
			return tasks.NewStripeRefundPaymentTask(payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1", Reason: "because"})
		}, []string{"reason"}},
		{"webhook: same status, bad time", func() (*tasks.Task, error) {
			return tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{EventID: "e1", PartnerID: "p1", TransactionID: "t1", PreviousStatus: "funded", Status: "funded", OccurredAt: "yesterday"})
		}, []string{"status", "occurredAt"}},
		{"webhook: unknown status", func() (*tasks.Task, error) {
			return tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{EventID: "e1", PartnerID: "p1", TransactionID: "t1", PreviousStatus: "funded", Status: "exploded", OccurredAt: now})
		}, []string{"status"}},
		{"notify: bad resolution and emails", func() (*tasks.Task, error) {
			return tasks.NewNotifyDisputeResolvedTask(payloads.NotifyDisputeResolved{DisputeID: "d1", TransactionID: "t1", Resolution: "coin_flip", BuyerEmail: "x", SellerEmail: "y"})
		}, []string{"resolution", "buyerEmail", "sellerEmail"}},
		{"audit: metadata too big and not an object", func() (*tasks.Task, error) {
			return tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "a1", Actor: "ops", Action: "x", OccurredAt: now, Metadata: []byte(`"` + strings.Repeat("a", 9000) + `"`)})
		}, []string{"metadata"}},
		{"id too long", func() (*tasks.Task, error) {
			return tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: strings.Repeat("a", 65), Actor: "ops", Action: "x", OccurredAt: now})
		}, []string{"eventId"}},
		{"bad dedupe key", func() (*tasks.Task, error) {
			return tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "a1", Actor: "ops", Action: "x", OccurredAt: now}, tasks.DedupeKey("has space"))
		}, []string{"dedupeKey"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			task, err := c.build()
			if task != nil {
				t.Errorf("got a task, want nil")
			}
			var ve *payloads.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got error %v, want a *payloads.ValidationError", err)
			}
			var got []string
			for _, f := range ve.Fields {
				got = append(got, f.Field)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got bad fields %v, want %v (error: %v)", got, c.want, err)
			}
			if strings.Contains(err.Error(), "victim@") || strings.Contains(err.Error(), "x@example.com") {
				t.Errorf("error repeats an address: %v", err)
			}
		})
	}
}

func TestDuplicateIsRefusedWhilePendingAndAfterCompletion(t *testing.T) {
	e := setup(t)
	p := payloads.SendReleaseEmail{TransactionID: "esc-123", RecipientEmail: "seller@example.com", Amount: 100, Currency: "USD"}
	id := e.enqueue(t, built(tasks.NewSendReleaseEmailTask(p)))
	if want := "send_release_email:escrow-esc-123-release-" + payloads.RecipientHash("seller@example.com"); id != want {
		t.Errorf("got id %q, want %q", id, want)
	}
	if strings.Contains(id, "seller@") {
		t.Errorf("job ID %q contains the raw address", id)
	}
	e.waitState(t, id, "completed", 10*time.Second)
	task, _ := tasks.NewSendReleaseEmailTask(p)
	got, err := e.client.Enqueue(context.Background(), task)
	if !errors.Is(err, tasks.ErrDuplicate) || got != id {
		t.Errorf("second enqueue after completion: got (%q, %v), want (%q, ErrDuplicate)", got, err, id)
	}
	// The caller's dedupe key (the seed's style) namespaces by type.
	custom, err := tasks.NewSendReleaseEmailTask(p, tasks.DedupeKey("escrow-esc-123-release"), tasks.ProcessIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cid, err := e.client.Enqueue(context.Background(), custom)
	if err != nil || cid != "send_release_email:escrow-esc-123-release" {
		t.Fatalf("custom key: got (%q, %v)", cid, err)
	}
	if _, err := e.client.Enqueue(context.Background(), custom); !errors.Is(err, tasks.ErrDuplicate) {
		t.Errorf("duplicate while scheduled: got %v, want ErrDuplicate", err)
	}
	if got := len(e.rec.attempts(id)); got != 1 {
		t.Errorf("handler ran %d times, want 1", got)
	}
}

// checkGaps checks attempt start times against the 2/4/8 s schedule: never
// early, at most 0.6 s late.
func checkGaps(t *testing.T, at []time.Time) {
	t.Helper()
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}
	if len(at) != 4 {
		t.Fatalf("got %d attempts, want 4", len(at))
	}
	for i, w := range want {
		gap := at[i+1].Sub(at[i])
		t.Logf("gap %d: %v (want %v)", i+1, gap, w)
		if gap < w || gap > w+600*time.Millisecond {
			t.Errorf("gap %d: got %v, want %v to %v", i+1, gap, w, w+600*time.Millisecond)
		}
	}
}

func TestFailingJobRetries2s4s8sThenDeadLetters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.rec.failFn = func(id string, n int) error { return fmt.Errorf("stripe unavailable (attempt %d)", n) }
	id := e.enqueue(t, built(tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-9", PaymentIntentID: "pi_retry"})))
	j := e.waitState(t, id, "archived", 25*time.Second)
	checkGaps(t, e.rec.attempts(id))
	if j.Attempts != 4 || j.MaxRetry != 3 || !strings.Contains(j.LastError, "attempt 4") {
		t.Errorf("archived job: got attempts %d, maxRetry %d, lastError %q; want 4, 3, attempt 4", j.Attempts, j.MaxRetry, j.LastError)
	}
	page, err := e.dl.List(context.Background(), deadletter.Filter{}, "", 10)
	dls := page.Entries
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead-letter log: got %d entries (%v), want 1", len(dls), err)
	}
	if d := dls[0]; d.ID != id || d.Attempts != 4 || d.Why != deadletter.WhyExhausted || d.Queue != "critical" || !strings.Contains(string(d.Payload), "pi_retry") {
		t.Errorf("dead-letter entry: got %+v", d)
	}

	// Requeue gives the full budget back: four more attempts on the same schedule.
	e.rec.mu.Lock()
	delete(e.rec.calls, id)
	e.rec.mu.Unlock()
	if _, err := tasks.NewDeadLetters(e.insp, e.dl).Requeue(context.Background(), id, "test", ""); err != nil {
		t.Fatalf("requeue: %v", err)
	}
	if rj, err := e.insp.Status(id); err != nil || rj.MaxRetry != 3 || rj.Attempts > 1 {
		t.Errorf("requeued: got %+v (%v), want maxRetry 3 and the budget unspent", rj, err)
	}
	e.waitState(t, id, "archived", 25*time.Second)
	checkGaps(t, e.rec.attempts(id))
}

func TestPermanentFailuresArchiveAfterOneAttempt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.rec.failFn = func(id string, n int) error {
		return fmt.Errorf("card declined: %w", asynq.SkipRetry)
	}
	id := e.enqueue(t, built(tasks.NewStripeRefundPaymentTask(payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_perm"})))
	j := e.waitState(t, id, "archived", 10*time.Second)
	if got := len(e.rec.attempts(id)); got != 1 || j.Attempts != 1 {
		t.Errorf("got %d handler calls and %d attempts, want 1 and 1", got, j.Attempts)
	}
	page, _ := e.dl.List(context.Background(), deadletter.Filter{}, "", 10)
	if dls := page.Entries; len(dls) != 1 || dls[0].Why != deadletter.WhyPermanent {
		t.Errorf("dead-letter log: got %+v, want one permanent entry", page.Entries)
	}
}

func TestGarbageInTheQueueIsArchivedWithTheField(t *testing.T) {
	t.Parallel()
	e := setup(t)
	raw := asynq.NewClient(e.redis)
	defer raw.Close()
	cases := []struct {
		name, typ string
		payload   []byte
		wantErr   string
	}{
		{"not JSON", "send_release_email", []byte("\x00\xffnot json"), "invalid send_release_email payload"},
		{"wrong field type", "send_refund_email", []byte(`{"transactionId":"t1","recipientEmail":"a@example.com","amount":"ten","currency":"USD"}`), "amount: must be a JSON number"},
		{"fails validation", "send_dispute_email", []byte(`{"transactionId":"t1","disputeId":"d1","recipientEmail":"not-an-address","reason":"r"}`), "recipientEmail: must be a valid e-mail address"},
		{"unknown type", "launch_rockets", []byte(`{}`), "handler not found"},
		{"10 MiB payload", "audit_log_created", []byte(`{"eventId":"` + strings.Repeat("a", 10<<20) + `"}`), "the limit is 65536"},
	}
	for i, c := range cases {
		id := fmt.Sprintf("garbage-%d", i)
		if _, err := raw.Enqueue(asynq.NewTask(c.typ, c.payload, asynq.TaskID(id), asynq.MaxRetry(3))); err != nil {
			t.Fatalf("%s: raw enqueue: %v", c.name, err)
		}
		j := e.waitState(t, id, "archived", 10*time.Second)
		if j.Attempts != 1 || !strings.Contains(j.LastError, c.wantErr) {
			t.Errorf("%s: got attempts %d, lastError %q; want 1 and %q", c.name, j.Attempts, j.LastError, c.wantErr)
		}
	}
	// The worker survived all of it.
	id := e.enqueue(t, built(tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "after-garbage", Actor: "ops", Action: "x", OccurredAt: now})))
	e.waitState(t, id, "completed", 10*time.Second)
}

func TestPanickingHandlerIsRecoveredAndRetried(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.rec.failFn = func(id string, n int) error {
		if n == 1 {
			panic("adapter bug")
		}
		return nil
	}
	id := e.enqueue(t, built(tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: "esc-p", RecipientEmail: "p@example.com", Amount: 1, Currency: "USD"})))
	e.waitState(t, id, "completed", 15*time.Second)
	if got := len(e.rec.attempts(id)); got != 2 {
		t.Errorf("got %d attempts, want 2 (panic, then success)", got)
	}
}

func TestEnqueueWithRedisDownFailsWithinTwoSeconds(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: srv.Addr(), DialTimeout: 5 * time.Second}
	c := tasks.NewClient(opt)
	defer c.Close()
	srv.Kill()
	task, err := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "down", Actor: "ops", Action: "x", OccurredAt: now})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	id, err := c.Enqueue(context.Background(), task)
	took := time.Since(start)
	if err == nil || errors.Is(err, tasks.ErrDuplicate) || id != "" {
		t.Errorf("got (%q, %v), want an error", id, err)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("enqueue took %v, want at most ~2 s", took)
	}
}
