// Package escrowjobs_test is the end-to-end suite of the core: the nine job
// types through their constructors, a real Redis, the real worker (asynq
// servers, retry gate, dead-letter log) and the real handlers, with the
// recording adapters of escrowtest standing in for the peers. The
// real binary against the real peers is e2e_test.go; the process and Redis
// fault suites are faults/process and faults/redis.
package escrowjobs_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

type env struct {
	redis  asynq.RedisConnOpt
	client *tasks.Client
	insp   *tasks.Inspector
	dl     *deadletter.File
	rec    *escrowtest.Adapters
}

// setup starts a private Redis and the real worker over recording adapters.
func setup(t *testing.T, mw ...asynq.MiddlewareFunc) *env {
	t.Helper()
	opt := escrowtest.RedisOpt(t, map[string]string{"REDIS_URL": peertest.Redis(t)})
	e := &env{redis: opt, client: tasks.NewClient(opt), insp: tasks.NewInspector(opt), rec: escrowtest.NewAdapters()}
	t.Cleanup(func() { e.client.Close(); e.insp.Close() })
	e.dl = escrowtest.StartWorker(t, escrowtest.WorkerConfig{Redis: opt, Adapters: e.rec, Enqueuer: e.client, Middleware: mw})
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
	id, err := e.client.Enqueue(context.Background(), b.task)
	if err != nil {
		t.Fatalf("enqueue %s: %v", b.task.ID, err)
	}
	return id
}

// waitState polls the job's state until it is want or timeout passes.
func (e *env) waitState(t *testing.T, id, want string, timeout time.Duration) tasks.Job {
	t.Helper()
	return escrowtest.AwaitState(t, e.insp, id, want, timeout)
}

const now = "2026-11-29T10:00:00Z"

// TestNineTypesReachTheirHandlerWithTheExactPayload enqueues the sample
// payload of every registered type and checks what reached the adapter:
// the payload itself for mail and audit, the Stripe call or the signed
// webhook body built from it for the others, and for the dispute fan-out
// its three jobs.
func TestNineTypesReachTheirHandlerWithTheExactPayload(t *testing.T) {
	e := setup(t)
	all := escrowtest.All("e2e")
	if len(all) != 9 {
		t.Errorf("got %d job types from the samples, want 9", len(all))
	}
	var notify []payloads.NotifyDisputeResolved
	type check struct {
		id   string
		want any
	}
	var checks []check
	for _, p := range all {
		task := escrowtest.Task(t, p)
		id := e.enqueue(t, built(task, nil))
		switch p := p.(type) {
		case payloads.SendReleaseEmail, payloads.SendRefundEmail, payloads.SendDisputeEmail, payloads.SendPaymentConfirmedEmail, payloads.AuditLogCreated:
			checks = append(checks, check{id, p})
		case payloads.StripeCapturePayment:
			checks = append(checks, check{id, handlers.Capture{JobID: id, TransactionID: p.TransactionID, PaymentIntentID: p.PaymentIntentID, Amount: p.AmountToCapture}})
		case payloads.StripeRefundPayment:
			checks = append(checks, check{id, handlers.Refund{JobID: id, TransactionID: p.TransactionID, PaymentIntentID: p.PaymentIntentID, Amount: p.Amount, RefundID: p.RefundID, Reason: p.Reason}})
		case payloads.WebhookEscrowStatusChanged:
			// The escrow's first event: sequence 1, numbered at enqueue.
			body := fmt.Sprintf(`{"type":"escrow.status_changed","timestamp":%q,"data":{"eventId":%q,"transactionId":%q,"previousStatus":%q,"status":%q,"sequence":1}}`,
				p.OccurredAt, p.EventID, p.TransactionID, p.PreviousStatus, p.Status)
			checks = append(checks, check{id, partner.Delivery{ID: p.EventID, PartnerID: p.PartnerID, Body: []byte(body), TransactionID: p.TransactionID}})
		case payloads.NotifyDisputeResolved:
			notify = append(notify, p)
			e.waitState(t, id, "completed", 10*time.Second)
		default:
			t.Errorf("%s: no expectation for type %T: add one here", id, p)
		}
	}
	for _, c := range checks {
		j := e.waitState(t, c.id, "completed", 10*time.Second)
		if got := e.rec.Payload(c.id); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: handler got %#v, want %#v", c.id, got, c.want)
		}
		if j.Attempts != 1 {
			t.Errorf("%s: got %d attempts, want 1", c.id, j.Attempts)
		}
	}
	// The fan-out creates two dispute e-mails and the partner webhook.
	if len(notify) != 1 {
		t.Fatalf("got %d notify_dispute_resolved samples, want 1", len(notify))
	}
	n := notify[0]
	for _, to := range []string{n.BuyerEmail, n.SellerEmail} {
		id := "send_dispute_email:dispute-" + n.DisputeID + "-resolved-" + payloads.RecipientHash(to)
		e.waitState(t, id, "completed", 10*time.Second)
		got, ok := e.rec.Payload(id).(payloads.SendDisputeEmail)
		if !ok || got.RecipientEmail != to || got.DisputeID != n.DisputeID {
			t.Errorf("fan-out e-mail %s: got %#v", id, e.rec.Payload(id))
		}
	}
	e.waitState(t, "webhook_escrow_status_changed:event-dispute-"+n.DisputeID+"-resolved", "completed", 10*time.Second)
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
	if got := e.rec.Calls(id); got != 1 {
		t.Errorf("handler ran %d times, want 1", got)
	}
}

// checkGaps checks a failing job's attempts against the 2/4/8 s schedule
// (SPEC §3: each retry 2 s, 4 s, 8 s after the failure before it, never
// early and at most 0.5 s late). The times are the worker's own: when the
// adapter returned the failure and when the handler of the next attempt
// called it, so a busy test process adds nothing. They are compared on the
// wall clock, as the worker keeps the retry time (a Redis key any process
// reads): a VM's clock stepped during the test moved the monotonic gaps
// against it (CI-like run: retries 1–36 ms "early" in both subtests at once).
func checkGaps(t *testing.T, at []escrowtest.Attempt) {
	t.Helper()
	const late = 500 * time.Millisecond
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}
	if len(at) != 4 {
		t.Fatalf("got %d attempts, want 4", len(at))
	}
	for i, w := range want {
		gap := at[i+1].Start.Round(0).Sub(at[i].End.Round(0)) // wall clock, see above
		t.Logf("retry %d: %v after the failure (want %v, at most %v late)", i+1, gap, w, late)
		if gap < w || gap > w+late {
			t.Errorf("retry %d: got %v after the failure, want %v to %v", i+1, gap, w, w+late)
		}
	}
}

func TestFailingJobRetries2s4s8sThenDeadLetters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.rec.FailWith(func(id string, n int) error { return fmt.Errorf("stripe unavailable (attempt %d)", n) })
	id := e.enqueue(t, built(tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-9", PaymentIntentID: "pi_retry"})))
	j := e.waitState(t, id, "archived", 25*time.Second)
	checkGaps(t, e.rec.Attempts(id))
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
	e.rec.Forget(id)
	if _, err := repair.NewDesk(e.insp, e.dl).Requeue(context.Background(), id, "test", ""); err != nil {
		t.Fatalf("requeue: %v", err)
	}
	if rj, err := e.insp.Status(context.Background(), id); err != nil || rj.MaxRetry != 3 || rj.Attempts > 1 {
		t.Errorf("requeued: got %+v (%v), want maxRetry 3 and the budget unspent", rj, err)
	}
	e.waitState(t, id, "archived", 25*time.Second)
	checkGaps(t, e.rec.Attempts(id))
}

func TestPermanentFailuresArchiveAfterOneAttempt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.rec.FailWith(func(id string, n int) error {
		return fmt.Errorf("card declined: %w", asynq.SkipRetry)
	})
	id := e.enqueue(t, built(tasks.NewStripeRefundPaymentTask(payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_perm"})))
	j := e.waitState(t, id, "archived", 10*time.Second)
	if got := e.rec.Calls(id); got != 1 || j.Attempts != 1 {
		t.Errorf("got %d handler calls and %d attempts, want 1 and 1", got, j.Attempts)
	}
	page, _ := e.dl.List(context.Background(), deadletter.Filter{}, "", 10)
	if dls := page.Entries; len(dls) != 1 || dls[0].Why != deadletter.WhyPermanent {
		t.Errorf("dead-letter log: got %+v, want one permanent entry", page.Entries)
	}
}

// Not parallel: every status poll of the 10 MiB job masks its payload
// (tasks.Inspector.Status → payloads.MaskedJSON, a regexp over 10 MiB),
// ~25 s of CPU in all under -race, which would starve the parallel
// retry-timing test.
func TestGarbageInTheQueueIsArchivedWithTheField(t *testing.T) {
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
		j := e.waitState(t, id, "archived", 60*time.Second)
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
	e.rec.FailWith(func(id string, n int) error {
		if n == 1 {
			panic("adapter bug")
		}
		return nil
	})
	id := e.enqueue(t, built(tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: "esc-p", RecipientEmail: "p@example.com", Amount: 1, Currency: "USD"})))
	e.waitState(t, id, "completed", 15*time.Second)
	if got := e.rec.Calls(id); got != 2 {
		t.Errorf("got %d attempts, want 2 (panic, then success)", got)
	}
}

func TestEnqueueWithRedisDownFailsWithinTwoSeconds(t *testing.T) {
	t.Parallel()
	srv := peertest.StartRedis(t)
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
