package payments_test

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payments"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/hibiken/asynq"
	"github.com/stripe/stripe-go/v76"
)

// secret is the test key; no log line or error may show it.
const secret = "sk_test_51S3cr3tKeyThatMustNeverBeLogged"

const (
	captureJob = "stripe_capture_payment:capture-pi_1"
	refundJob  = "stripe_refund_payment:refund-pi_1-full"
)

type fixture struct {
	fake *escrowtest.Stripe
	pay  *payments.Stripe
	logs *peertest.Buffer
}

// setup starts a fake Stripe and an adapter logging everything, down to
// stripe-go's debug lines, and checks at cleanup that the key was never logged.
func setup(t *testing.T) fixture {
	t.Helper()
	f := escrowtest.StartStripe(t, escrowtest.StripeConfig{Secret: secret})
	return fixture{fake: f, pay: newStripe(t, f.URL, f.Client()), logs: logsOf(t)}
}

func newStripe(t *testing.T, base string, hc *http.Client) *payments.Stripe {
	t.Helper()
	p, err := payments.NewStripe(payments.StripeConfig{SecretKey: secret, APIBase: base, HTTPClient: hc}, slog.New(slog.NewTextHandler(logsOf(t), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("NewStripe: %v", err)
	}
	return p
}

var testLogs sync.Map // *testing.T → *peertest.Buffer

// logsOf is the log buffer of test t, checked at cleanup for the key.
func logsOf(t *testing.T) *peertest.Buffer {
	t.Helper()
	v, loaded := testLogs.LoadOrStore(t, &peertest.Buffer{})
	l := v.(*peertest.Buffer)
	if !loaded {
		t.Cleanup(func() {
			testLogs.Delete(t)
			if logs := l.String(); strings.Contains(logs, secret) || strings.Contains(logs, "_secret_") {
				t.Errorf("logs: got\n%s\nwant neither the key nor a client secret in them", logs)
			}
		})
	}
	return l
}

// noSecret fails the test when err's text shows the key or a client secret.
func noSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if s := err.Error(); strings.Contains(s, secret) || strings.Contains(s, "_secret_") {
		t.Errorf("error: got %q, want neither the key nor a client secret in it", s)
	}
}

// attempts calls op like asynq would: again after each transient error, at
// most 1+MaxRetry times. It fails the test on a permanent error.
func attempts(t *testing.T, op func() (handlers.PaymentResult, error)) (handlers.PaymentResult, int) {
	t.Helper()
	for n := 1; n <= 1+retry.Max; n++ {
		res, err := op()
		noSecret(t, err)
		if err == nil {
			return res, n
		}
		if retry.IsPermanent(err) {
			t.Fatalf("attempt %d: got permanent error %v, want success or a transient error", n, err)
		}
	}
	t.Fatalf("got no success within %d attempts", 1+retry.Max)
	return handlers.PaymentResult{}, 0
}

// once is what a capture or a refund job must do across retries and
// replays: key is its job ID, the Idempotency-Key of every POST; id is the
// result's ID; effect names what counted counts (captures or refunds
// created), which must end at 1.
type once struct {
	key, id, effect string
	status          string // of the result; empty is succeeded
	counted         func() int
	wantAttempts    int
	wantDone        bool
}

// happensOnce runs op like asynq would and checks the attempts and the
// result, then check (the operation's own effect), the Idempotency-Key of
// every POST, and that op replayed within the key window and after it
// (keys wiped) is AlreadyDone without a second effect.
func happensOnce(t *testing.T, fx fixture, o once, op func() (handlers.PaymentResult, error), check func()) {
	t.Helper()
	res, n := attempts(t, op)
	if n != o.wantAttempts {
		t.Errorf("attempts: got %d, want %d", n, o.wantAttempts)
	}
	status := cmp.Or(o.status, "succeeded")
	if want := (handlers.PaymentResult{ID: o.id, Status: status, AlreadyDone: o.wantDone}); res != want {
		t.Errorf("result: got %+v, want %+v", res, want)
	}
	check()
	for i, p := range fx.fake.Posts() {
		if p.IdempotencyKey != o.key {
			t.Errorf("POST %d %s: Idempotency-Key: got %q, want %q on every attempt", i, p.Path, p.IdempotencyKey, o.key)
		}
	}
	for _, wipe := range []bool{false, true} {
		if wipe {
			fx.fake.ForgetKeys()
		}
		res, err := op()
		if err != nil {
			t.Fatalf("replay (keys wiped %v): got error %v, want nil", wipe, err)
		}
		if want := (handlers.PaymentResult{ID: o.id, Status: status, AlreadyDone: true}); res != want {
			t.Errorf("replay (keys wiped %v): got %+v, want %+v", wipe, res, want)
		}
	}
	if got := o.counted(); got != 1 {
		t.Errorf("%s: got %d, want 1", o.effect, got)
	}
}

func TestCaptureHappensOnceAcrossRetriesAndKeyExpiry(t *testing.T) {
	for _, tc := range []struct {
		name         string
		amount       int64 // 0: all
		faults       []escrowtest.StripeFault
		wantAttempts int
		wantDone     bool
		wantReceived int64
	}{
		{name: "first attempt", wantAttempts: 1, wantReceived: 5000},
		{name: "partial amount", amount: 1200, wantAttempts: 1, wantReceived: 1200},
		{name: "after a 500", faults: []escrowtest.StripeFault{{Status: 500, Body: escrowtest.StripeError("api_error", "", "oops")}}, wantAttempts: 2, wantReceived: 5000},
		{name: "after a lock_timeout", faults: []escrowtest.StripeFault{{Status: 409, Body: escrowtest.StripeError("invalid_request_error", "lock_timeout", "locked")}}, wantAttempts: 2, wantReceived: 5000},
		// net/http resends a request with an Idempotency-Key once when a
		// reused connection breaks; the key store answers it with the capture.
		{name: "after a lost answer, resent with the key", faults: []escrowtest.StripeFault{{Drop: true}}, wantAttempts: 1, wantReceived: 5000},
		// The resend is lost too: the next attempt reads the PaymentIntent.
		{name: "after lost answers, read back", faults: []escrowtest.StripeFault{{Drop: true}, {Drop: true}}, wantAttempts: 2, wantDone: true, wantReceived: 5000},
		{name: "after a 503 and lost answers", amount: 700, faults: []escrowtest.StripeFault{{Status: 503, Body: "upstream down"}, {Drop: true}, {Drop: true}}, wantAttempts: 3, wantDone: true, wantReceived: 700},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := setup(t)
			fx.fake.AddIntent("pi_1", "requires_capture", 5000)
			for _, ft := range tc.faults {
				ft.Method, ft.Path = http.MethodPost, "/v1/payment_intents/pi_1/capture"
				fx.fake.Inject(ft)
			}
			req := handlers.Capture{JobID: captureJob, TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: tc.amount}
			o := once{key: captureJob, id: "ch_fake1", effect: "captures", wantAttempts: tc.wantAttempts, wantDone: tc.wantDone,
				counted: func() int { captures, _ := fx.fake.Counts(); return captures }}
			happensOnce(t, fx, o, func() (handlers.PaymentResult, error) { return fx.pay.Capture(context.Background(), req) }, func() {
				if got := fx.fake.Intent("pi_1"); got.Received != tc.wantReceived || got.Metadata[payments.MetadataJob] != captureJob || got.Metadata[payments.MetadataTransaction] != "esc-1" {
					t.Errorf("payment intent: got received %d, metadata %v; want received %d, metadata %s=%s %s=esc-1",
						got.Received, got.Metadata, tc.wantReceived, payments.MetadataJob, captureJob, payments.MetadataTransaction)
				}
			})
		})
	}
}

func TestRefundHappensOnceAcrossRetriesAndKeyExpiry(t *testing.T) {
	for _, tc := range []struct {
		name         string
		amount       int64 // 0: what remains
		reason       string
		faults       []escrowtest.StripeFault
		wantAttempts int
		wantDone     bool
		wantAmount   int64
	}{
		{name: "first attempt", reason: "requested_by_customer", wantAttempts: 1, wantAmount: 5000},
		{name: "partial amount", amount: 1500, wantAttempts: 1, wantAmount: 1500},
		{name: "after a 429", reason: "duplicate", faults: []escrowtest.StripeFault{{Status: 429, Body: escrowtest.StripeError("invalid_request_error", "rate_limit", "slow down")}}, wantAttempts: 2, wantAmount: 5000},
		{name: "after a lost answer, resent with the key", reason: "fraudulent", faults: []escrowtest.StripeFault{{Drop: true}}, wantAttempts: 1, wantAmount: 5000},
		{name: "after lost answers, read back", reason: "fraudulent", faults: []escrowtest.StripeFault{{Drop: true}, {Drop: true}}, wantAttempts: 2, wantDone: true, wantAmount: 5000},
		{name: "after a Stripe-Should-Retry 400 and lost answers", faults: []escrowtest.StripeFault{
			{Status: 400, Header: map[string]string{"Stripe-Should-Retry": "true"}, Body: escrowtest.StripeError("invalid_request_error", "", "try again")},
			{Drop: true}, {Drop: true},
		}, wantAttempts: 3, wantDone: true, wantAmount: 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := setup(t)
			fx.fake.AddIntent("pi_1", "succeeded", 5000)
			fx.fake.AddRefund(escrowtest.StripeRefund{ID: "re_other", PaymentIntent: "pi_1", Status: "succeeded", Amount: 0,
				Metadata: map[string]string{payments.MetadataJob: "some-other-job"}})
			for _, ft := range tc.faults {
				ft.Method, ft.Path = http.MethodPost, "/v1/refunds"
				fx.fake.Inject(ft)
			}
			req := handlers.Refund{JobID: refundJob, TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: tc.amount, Reason: tc.reason}
			if tc.amount > 0 {
				req.RefundID = "rf-1"
			}
			o := once{key: refundJob, id: "re_fake1", effect: "refunds created", wantAttempts: tc.wantAttempts, wantDone: tc.wantDone,
				counted: func() int { _, created := fx.fake.Counts(); return created }}
			happensOnce(t, fx, o, func() (handlers.PaymentResult, error) { return fx.pay.Refund(context.Background(), req) }, func() {
				refunds := fx.fake.Refunds()
				if len(refunds) != 2 {
					t.Fatalf("refunds: got %d, want the other job's and ours", len(refunds))
				}
				got := refunds[1]
				if got.Amount != tc.wantAmount || got.Reason != tc.reason || got.Metadata[payments.MetadataJob] != refundJob || got.Metadata[payments.MetadataTransaction] != "esc-1" {
					t.Errorf("refund: got %+v, want amount %d, reason %q, metadata %s=%s %s=esc-1",
						got, tc.wantAmount, tc.reason, payments.MetadataJob, refundJob, payments.MetadataTransaction)
				}
			})
		})
	}
}

func TestRefundOfAnotherJobIsANewRefund(t *testing.T) {
	fx := setup(t)
	fx.fake.AddIntent("pi_1", "succeeded", 5000)
	for i, job := range []string{"stripe_refund_payment:refund-pi_1-1000-rf-1", "stripe_refund_payment:refund-pi_1-2000-rf-2"} {
		res, err := fx.pay.Refund(context.Background(), handlers.Refund{JobID: job, TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: int64(1000 * (i + 1)), RefundID: "rf-" + string(rune('1'+i))})
		if err != nil {
			t.Fatalf("refund %s: got error %v, want nil", job, err)
		}
		if res.AlreadyDone {
			t.Errorf("refund %s: got AlreadyDone, want a new refund", job)
		}
	}
	if got := fx.fake.Intent("pi_1").Refunded; got != 3000 {
		t.Errorf("refunded: got %d, want 3000", got)
	}
}

func TestErrorsArePermanentOrTransient(t *testing.T) {
	capturePath, refundPath := "/v1/payment_intents/pi_1/capture", "/v1/refunds"
	for _, tc := range []struct {
		name           string
		op             string // capture or refund
		status         string // the PaymentIntent's
		fault          *escrowtest.StripeFault
		refund         *escrowtest.StripeRefund // already there
		wantPermanent  bool
		wantRetryAfter time.Duration
		wantStripe     stripe.ErrorType // when an *stripe.Error is the cause
	}{
		{name: "402 card_error", op: "capture", fault: &escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 402, Body: escrowtest.StripeError("card_error", "card_declined", "Your card was declined.")}, wantPermanent: true, wantStripe: stripe.ErrorTypeCard},
		{name: "400 invalid_request_error", op: "capture", fault: &escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 400, Body: escrowtest.StripeError("invalid_request_error", "amount_too_large", "too much")}, wantPermanent: true, wantStripe: stripe.ErrorTypeInvalidRequest},
		{name: "400 idempotency_error", op: "refund", fault: &escrowtest.StripeFault{Method: "POST", Path: refundPath, Status: 400, Body: escrowtest.StripeError("idempotency_error", "", "Keys for idempotent requests can only be used with the same parameters")}, wantPermanent: true, wantStripe: stripe.ErrorTypeIdempotency},
		{name: "401 bad key", op: "capture", fault: &escrowtest.StripeFault{Method: "GET", Path: "/v1/payment_intents/pi_1", Status: 401, Body: escrowtest.StripeError("invalid_request_error", "", "Invalid API Key provided: sk_test_****ged")}, wantPermanent: true, wantStripe: stripe.ErrorTypeInvalidRequest},
		{name: "404 resource_missing", op: "capture", fault: &escrowtest.StripeFault{Method: "GET", Path: "/v1/payment_intents/pi_1", Status: 404, Body: escrowtest.StripeError("invalid_request_error", "resource_missing", "No such payment_intent")}, wantPermanent: true, wantStripe: stripe.ErrorTypeInvalidRequest},
		{name: "409 lock_timeout", op: "capture", fault: &escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 409, Body: escrowtest.StripeError("invalid_request_error", "lock_timeout", "locked")}, wantStripe: stripe.ErrorTypeInvalidRequest},
		{name: "409 concurrent use of the key", op: "refund", fault: &escrowtest.StripeFault{Method: "POST", Path: refundPath, Status: 409, Body: escrowtest.StripeError("idempotency_error", "", "There is currently another in-progress request using this Idempotent Key")}, wantStripe: stripe.ErrorTypeIdempotency},
		{name: "400 lock_timeout", op: "refund", fault: &escrowtest.StripeFault{Method: "POST", Path: refundPath, Status: 400, Body: escrowtest.StripeError("invalid_request_error", "lock_timeout", "locked")}, wantStripe: stripe.ErrorTypeInvalidRequest},
		{name: "429", op: "capture", fault: &escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 429, Body: escrowtest.StripeError("invalid_request_error", "rate_limit", "Too many requests")}, wantStripe: stripe.ErrorTypeInvalidRequest},
		{name: "429 with Retry-After", op: "refund", fault: &escrowtest.StripeFault{Method: "POST", Path: refundPath, Status: 429, Header: map[string]string{"Retry-After": "30"}, Body: escrowtest.StripeError("invalid_request_error", "rate_limit", "Too many requests")}, wantRetryAfter: 30 * time.Second, wantStripe: stripe.ErrorTypeInvalidRequest},
		{name: "500 api_error", op: "capture", fault: &escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 500, Body: escrowtest.StripeError("api_error", "", "Something went wrong")}, wantStripe: stripe.ErrorTypeAPI},
		{name: "502 from a proxy", op: "refund", fault: &escrowtest.StripeFault{Method: "POST", Path: refundPath, Status: 502, Body: "<html>Bad Gateway</html>"}},
		{name: "500 on the refund list", op: "refund", fault: &escrowtest.StripeFault{Method: "GET", Path: refundPath, Status: 500, Body: escrowtest.StripeError("api_error", "", "oops")}, wantStripe: stripe.ErrorTypeAPI},
		{name: "400 with Stripe-Should-Retry: true", op: "capture", fault: &escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 400, Header: map[string]string{"Stripe-Should-Retry": "true"}, Body: escrowtest.StripeError("invalid_request_error", "", "try again")}, wantStripe: stripe.ErrorTypeInvalidRequest},
		{name: "500 with Stripe-Should-Retry: false", op: "refund", fault: &escrowtest.StripeFault{Method: "POST", Path: refundPath, Status: 500, Header: map[string]string{"Stripe-Should-Retry": "false"}, Body: escrowtest.StripeError("api_error", "", "no use")}, wantPermanent: true, wantStripe: stripe.ErrorTypeAPI},
		{name: "an error that carries the payment intent", op: "capture", fault: &escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 402,
			Body: `{"error":{"type":"card_error","code":"card_declined","message":"declined","payment_intent":{"id":"pi_1","object":"payment_intent","client_secret":"pi_1_secret_doNotLeak"}}}`}, wantPermanent: true, wantStripe: stripe.ErrorTypeCard},
		{name: "a peer that echoes the key", op: "refund", fault: &escrowtest.StripeFault{Method: "POST", Path: refundPath, Status: 401, Body: escrowtest.StripeError("invalid_request_error", "", "Invalid API Key provided: "+secret)}, wantPermanent: true, wantStripe: stripe.ErrorTypeInvalidRequest},
		{name: "canceled payment intent", op: "capture", status: "canceled", wantPermanent: true},
		{name: "payment intent without a payment method", op: "capture", status: "requires_payment_method", wantPermanent: true},
		{name: "payment intent processing", op: "capture", status: "processing"},
		{name: "refund of a payment intent without a payment method", op: "refund", status: "requires_payment_method", wantPermanent: true},
		{name: "refund of a payment intent processing", op: "refund", status: "processing"},
		{name: "500 on the cancel of an uncaptured payment intent", op: "refund", status: "requires_capture", fault: &escrowtest.StripeFault{Method: "POST", Path: "/v1/payment_intents/pi_1/cancel", Status: 500, Body: escrowtest.StripeError("api_error", "", "oops")}, wantStripe: stripe.ErrorTypeAPI},
		{name: "this job's refund failed", op: "refund", refund: &escrowtest.StripeRefund{ID: "re_failed", PaymentIntent: "pi_1", Status: "failed", Amount: 5000, Metadata: map[string]string{payments.MetadataJob: refundJob}}, wantPermanent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := setup(t)
			status := tc.status
			if status == "" {
				status = map[string]string{"capture": "requires_capture", "refund": "succeeded"}[tc.op]
			}
			fx.fake.AddIntent("pi_1", status, 5000)
			if tc.fault != nil {
				fx.fake.Inject(*tc.fault)
			}
			if tc.refund != nil {
				fx.fake.AddRefund(*tc.refund)
			}
			var err error
			if tc.op == "capture" {
				_, err = fx.pay.Capture(context.Background(), handlers.Capture{JobID: captureJob, TransactionID: "esc-1", PaymentIntentID: "pi_1"})
			} else {
				_, err = fx.pay.Refund(context.Background(), handlers.Refund{JobID: refundJob, TransactionID: "esc-1", PaymentIntentID: "pi_1"})
			}
			if err == nil {
				t.Fatalf("got no error, want one")
			}
			noSecret(t, err)
			if got := retry.IsPermanent(err); got != tc.wantPermanent {
				t.Errorf("permanent: got %v, want %v (error %v)", got, tc.wantPermanent, err)
			}
			if !strings.HasPrefix(err.Error(), "stripe: ") || !strings.Contains(err.Error(), "pi_1") {
				t.Errorf("error: got %q, want it to start with \"stripe: \" and name pi_1", err)
			}
			var se *stripe.Error
			if gotStripe := errors.As(err, &se); gotStripe != (tc.wantStripe != "") {
				t.Errorf("*stripe.Error cause: got %v, want %v (error %v)", gotStripe, tc.wantStripe != "", err)
			} else if gotStripe && se.Type != tc.wantStripe {
				t.Errorf("stripe error type: got %q, want %q", se.Type, tc.wantStripe)
			}
			var ra *retry.AfterError
			if got := errors.As(err, &ra); got != (tc.wantRetryAfter > 0) || (got && ra.After != tc.wantRetryAfter) {
				t.Errorf("retry after: got %v (%v), want %v", got, ra, tc.wantRetryAfter)
			}
			if captures, refunds := fx.fake.Counts(); captures+refunds != 0 {
				t.Errorf("effects: got %d captures and %d refunds, want none", captures, refunds)
			}
		})
	}
}

func TestSecretNeverLogged(t *testing.T) {
	fx := setup(t)
	fx.fake.AddIntent("pi_1", "succeeded", 5000)
	fx.fake.Inject(escrowtest.StripeFault{Method: "POST", Path: "/v1/refunds", Status: 401, Body: escrowtest.StripeError("invalid_request_error", "", "Invalid API Key provided: "+secret)})
	_, err := fx.pay.Refund(context.Background(), handlers.Refund{JobID: refundJob, PaymentIntentID: "pi_1"})
	if !retry.IsPermanent(err) {
		t.Errorf("got %v, want a permanent error", err)
	}
	noSecret(t, err)
	if !strings.Contains(err.Error(), "Invalid API Key provided: [redacted]") {
		t.Errorf("error: got %q, want the peer's message with the key redacted", err)
	}
	if logs := fx.logs.String(); !strings.Contains(logs, "Requesting POST") {
		t.Errorf("logs: got\n%s\nwant stripe-go's request lines", logs)
	}
	// setup's cleanup checks that the logs never show the key or a client secret.
}

func TestNetworkFailuresAreTransient(t *testing.T) {
	for _, tc := range []struct {
		name string
		base func(t *testing.T) (string, *http.Client)
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{name: "connection refused", base: func(t *testing.T) (string, *http.Client) {
			f := escrowtest.StartStripe(t, escrowtest.StripeConfig{Secret: secret})
			f.Close()
			return f.URL, nil
		}},
		{name: "client timeout", base: func(t *testing.T) (string, *http.Client) {
			f := escrowtest.StartStripe(t, escrowtest.StripeConfig{Secret: secret})
			f.SetDelay(func(*http.Request) time.Duration { return time.Hour }) // answers only after the caller gave up
			return f.URL, &http.Client{Timeout: 100 * time.Millisecond}
		}},
		{name: "context deadline", base: func(t *testing.T) (string, *http.Client) {
			f := escrowtest.StartStripe(t, escrowtest.StripeConfig{Secret: secret})
			f.SetDelay(func(*http.Request) time.Duration { return time.Hour }) // answers only after the caller gave up
			return f.URL, nil
		}, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, hc := tc.base(t)
			p := newStripe(t, base, hc)
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			_, cerr := p.Capture(ctx, handlers.Capture{JobID: captureJob, PaymentIntentID: "pi_1"})
			_, rerr := p.Refund(ctx, handlers.Refund{JobID: refundJob, PaymentIntentID: "pi_1"})
			for op, err := range map[string]error{"capture": cerr, "refund": rerr} {
				if err == nil || retry.IsPermanent(err) {
					t.Errorf("%s: got %v, want a transient error", op, err)
				}
				noSecret(t, err)
			}
		})
	}
}

func TestBadRequestsArePermanentWithoutACall(t *testing.T) {
	fx := setup(t)
	fx.fake.AddIntent("pi_1", "requires_capture", 5000)
	for _, tc := range []struct {
		name string
		c    handlers.Capture
		want string
	}{
		{name: "no key", c: handlers.Capture{PaymentIntentID: "pi_1"}, want: "no idempotency key"},
		{name: "no payment intent", c: handlers.Capture{JobID: captureJob}, want: "no payment intent"},
		{name: "negative amount", c: handlers.Capture{JobID: captureJob, PaymentIntentID: "pi_1", Amount: -1}, want: "negative amount"},
	} {
		_, cerr := fx.pay.Capture(context.Background(), tc.c)
		_, rerr := fx.pay.Refund(context.Background(), handlers.Refund{JobID: tc.c.JobID, PaymentIntentID: tc.c.PaymentIntentID, Amount: tc.c.Amount})
		for op, err := range map[string]error{"capture": cerr, "refund": rerr} {
			if !retry.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %s: got %v, want a permanent error saying %q", tc.name, op, err, tc.want)
			}
		}
	}
	if got := fx.fake.Posts(); len(got) != 0 {
		t.Errorf("requests: got %v, want none", got)
	}
}

func TestNewStripeChecksConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  payments.StripeConfig
		want string
	}{
		{name: "no key", cfg: payments.StripeConfig{}, want: "STRIPE_SECRET_KEY"},
		{name: "publishable key", cfg: payments.StripeConfig{SecretKey: "pk_test_" + secret[8:]}, want: "STRIPE_SECRET_KEY"},
		{name: "key with a newline", cfg: payments.StripeConfig{SecretKey: secret + "\n"}, want: "STRIPE_SECRET_KEY"},
		{name: "base not http", cfg: payments.StripeConfig{SecretKey: secret, APIBase: "ftp://127.0.0.1:1"}, want: "STRIPE_API_BASE"},
		{name: "base without host", cfg: payments.StripeConfig{SecretKey: secret, APIBase: "http://"}, want: "STRIPE_API_BASE"},
		{name: "base with a query", cfg: payments.StripeConfig{SecretKey: secret, APIBase: "https://api.stripe.com?x=1"}, want: "STRIPE_API_BASE"},
	} {
		_, err := payments.NewStripe(tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %s", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), secret[8:]) {
			t.Errorf("%s: got %q, want the key not in the error", tc.name, err)
		}
	}
	for _, key := range []string{"sk_live_abc", "sk_test_abc", "rk_live_abc"} {
		if _, err := payments.NewStripe(payments.StripeConfig{SecretKey: key}, nil); err != nil {
			t.Errorf("key %s…: got %v, want nil", key[:3], err)
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	long := "stripe_refund_payment:" + strings.Repeat("k", 300)
	for _, tc := range []struct {
		name, jobID string
		verbatim    bool
	}{
		{name: "job ID", jobID: captureJob, verbatim: true},
		{name: "255 characters", jobID: strings.Repeat("a", 255), verbatim: true},
		{name: "too long", jobID: long},
		{name: "with a space", jobID: "stripe_capture_payment:a b"},
		{name: "not ASCII", jobID: "stripe_capture_payment:é"},
	} {
		got := payments.IdempotencyKey(tc.jobID)
		if got != payments.IdempotencyKey(tc.jobID) {
			t.Errorf("%s: got two keys for one job ID, want one", tc.name)
		}
		if tc.verbatim && got != tc.jobID {
			t.Errorf("%s: got %q, want the job ID", tc.name, got)
		}
		if !tc.verbatim && (got == tc.jobID || len(got) > 255 || !strings.HasPrefix(got, "escrowjobs-")) {
			t.Errorf("%s: got %q, want escrowjobs-<sha256>", tc.name, got)
		}
	}
	if payments.IdempotencyKey(long) == payments.IdempotencyKey(long+"x") {
		t.Errorf("got one key for two job IDs, want two")
	}
}

func TestRefundOfAnUncapturedPaymentIntentCancelsIt(t *testing.T) {
	cancelPath := "/v1/payment_intents/pi_1/cancel"
	for _, tc := range []struct {
		name         string
		amount       int64 // 0: all
		reason       string
		faults       []escrowtest.StripeFault
		wantAttempts int
		wantDone     bool
	}{
		{name: "first attempt", wantAttempts: 1},
		{name: "with a reason", reason: "requested_by_customer", wantAttempts: 1},
		{name: "an amount that is the whole hold", amount: 5000, wantAttempts: 1},
		{name: "after a 500", faults: []escrowtest.StripeFault{{Status: 500, Body: escrowtest.StripeError("api_error", "", "oops")}}, wantAttempts: 2},
		{name: "after a lost answer, resent with the key", reason: "fraudulent", faults: []escrowtest.StripeFault{{Drop: true}}, wantAttempts: 1},
		// The resend is lost too: the next attempt reads a canceled PaymentIntent.
		{name: "after lost answers, read back", faults: []escrowtest.StripeFault{{Drop: true}, {Drop: true}}, wantAttempts: 2, wantDone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := setup(t)
			fx.fake.AddIntent("pi_1", "requires_capture", 5000)
			for _, ft := range tc.faults {
				ft.Method, ft.Path = http.MethodPost, cancelPath
				fx.fake.Inject(ft)
			}
			req := handlers.Refund{JobID: refundJob, TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: tc.amount, Reason: tc.reason}
			if tc.amount > 0 {
				req.RefundID = "rf-1"
			}
			o := once{key: payments.CancelKey(refundJob), id: "pi_1", status: "canceled", effect: "cancels",
				wantAttempts: tc.wantAttempts, wantDone: tc.wantDone, counted: fx.fake.Cancels}
			happensOnce(t, fx, o, func() (handlers.PaymentResult, error) { return fx.pay.Refund(context.Background(), req) }, func() {
				got := fx.fake.Intent("pi_1")
				if got.Status != "canceled" || got.Capturable != 0 || got.Received != 0 || got.CancellationReason != tc.reason {
					t.Errorf("payment intent: got status %q, capturable %d, received %d, cancellation reason %q; want canceled, 0, 0, %q",
						got.Status, got.Capturable, got.Received, got.CancellationReason, tc.reason)
				}
				if refunds := fx.fake.Refunds(); len(refunds) != 0 {
					t.Errorf("refunds: got %+v, want none (nothing was captured)", refunds)
				}
			})
		})
	}
}

func TestRefundOfAReleasedHoldIsDone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(*escrowtest.Stripe)
		amount int64
	}{
		{name: "canceled", setup: func(f *escrowtest.Stripe) { f.AddIntent("pi_1", "canceled", 5000) }},
		{name: "authorization expired", setup: func(f *escrowtest.Stripe) {
			f.AddIntent("pi_1", "requires_capture", 5000)
			f.ExpireAuthorization("pi_1")
		}},
		{name: "canceled, partial amount asked", amount: 1000, setup: func(f *escrowtest.Stripe) { f.AddIntent("pi_1", "canceled", 5000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := setup(t)
			tc.setup(fx.fake)
			req := handlers.Refund{JobID: refundJob, PaymentIntentID: "pi_1", Amount: tc.amount}
			if tc.amount > 0 {
				req.RefundID = "rf-1"
			}
			res, err := fx.pay.Refund(context.Background(), req)
			if err != nil {
				t.Fatalf("got error %v, want nil (the buyer's money is back)", err)
			}
			if want := (handlers.PaymentResult{ID: "pi_1", Status: "canceled", AlreadyDone: true}); res != want {
				t.Errorf("got %+v, want %+v", res, want)
			}
			if posts := fx.fake.Posts(); len(posts) != 0 {
				t.Errorf("requests: got %+v, want none", posts)
			}
		})
	}
}

func TestPartialRefundOfAnUncapturedPaymentIntentIsPermanent(t *testing.T) {
	fx := setup(t)
	fx.fake.AddIntent("pi_1", "requires_capture", 5000)
	for _, amount := range []int64{1000, 6000} {
		_, err := fx.pay.Refund(context.Background(), handlers.Refund{JobID: refundJob, PaymentIntentID: "pi_1", Amount: amount, RefundID: "rf-1"})
		if !retry.IsPermanent(err) || !strings.Contains(err.Error(), "uncaptured") || !strings.Contains(err.Error(), "capture the seller's part") {
			t.Errorf("amount %d: got %v, want a permanent error saying the hold is released whole and the seller's part is captured", amount, err)
		}
	}
	if got := fx.fake.Intent("pi_1"); got.Status != "requires_capture" || got.Capturable != 5000 {
		t.Errorf("payment intent: got %s holding %d, want it untouched: requires_capture holding 5000", got.Status, got.Capturable)
	}
	if posts := fx.fake.Posts(); len(posts) != 0 {
		t.Errorf("requests: got %+v, want none", posts)
	}
}

// TestRefundCapturedWhileCanceling: the PaymentIntent is captured between
// the refund job's read and its cancel. Stripe refuses the cancel; the job
// retries and refunds, under a key of its own (CancelKey differs from the
// refund's key, so Stripe does not refuse the refund as a reused key).
func TestRefundCapturedWhileCanceling(t *testing.T) {
	fx := setup(t)
	fx.fake.AddIntent("pi_1", "requires_capture", 5000)
	fx.fake.Inject(escrowtest.StripeFault{Method: http.MethodPost, Path: "/v1/payment_intents/pi_1/cancel", Status: 400,
		Body: `{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state","message":"You cannot cancel this PaymentIntent because it has a status of succeeded.","payment_intent":{"id":"pi_1","object":"payment_intent","status":"succeeded"}}}`})
	req := handlers.Refund{JobID: refundJob, TransactionID: "esc-1", PaymentIntentID: "pi_1"}
	_, err := fx.pay.Refund(context.Background(), req)
	if err == nil || retry.IsPermanent(err) || !strings.Contains(err.Error(), "succeeded") {
		t.Fatalf("attempt 1: got %v, want a transient error saying the payment intent succeeded meanwhile", err)
	}
	fx.fake.AddIntent("pi_1", "succeeded", 5000) // the capture that raced the cancel
	res, err := fx.pay.Refund(context.Background(), req)
	if err != nil {
		t.Fatalf("attempt 2: got error %v, want nil", err)
	}
	if res.ID != "re_fake1" || res.AlreadyDone {
		t.Errorf("attempt 2: got %+v, want the new refund re_fake1", res)
	}
	var keys []string
	for _, p := range fx.fake.Posts() {
		keys = append(keys, p.Path+" "+p.IdempotencyKey)
	}
	if want := []string{"/v1/payment_intents/pi_1/cancel " + payments.CancelKey(refundJob), "/v1/refunds " + refundJob}; !slices.Equal(keys, want) {
		t.Errorf("POSTs: got %q, want %q", keys, want)
	}
}

func TestCaptureOfAGoneAuthorizationIsPermanent(t *testing.T) {
	capturePath := "/v1/payment_intents/pi_1/capture"
	canceledIntent := `"payment_intent":{"id":"pi_1","object":"payment_intent","status":"canceled","cancellation_reason":"automatic"}`
	for _, tc := range []struct {
		name     string
		setup    func(*escrowtest.Stripe)
		wantGone bool
		wantText string
	}{
		{name: "canceled", setup: func(f *escrowtest.Stripe) { f.AddIntent("pi_1", "canceled", 5000) },
			wantGone: true, wantText: "payment intent is canceled"},
		{name: "authorization expired", setup: func(f *escrowtest.Stripe) {
			f.AddIntent("pi_1", "requires_capture", 5000)
			f.ExpireAuthorization("pi_1")
		}, wantGone: true, wantText: "payment intent is canceled (cancellation_reason automatic)"},
		{name: "charge_expired_for_capture", setup: func(f *escrowtest.Stripe) {
			f.AddIntent("pi_1", "requires_capture", 5000)
			f.Inject(escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 400, Body: escrowtest.StripeError("invalid_request_error", "charge_expired_for_capture", "This charge has expired for capture.")})
		}, wantGone: true, wantText: "charge_expired_for_capture"},
		{name: "capture_charge_authorization_expired", setup: func(f *escrowtest.Stripe) {
			f.AddIntent("pi_1", "requires_capture", 5000)
			f.Inject(escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 400, Body: escrowtest.StripeError("invalid_request_error", "capture_charge_authorization_expired", "The authorization has expired.")})
		}, wantGone: true, wantText: "capture_charge_authorization_expired"},
		{name: "payment_intent_unexpected_state, canceled meanwhile", setup: func(f *escrowtest.Stripe) {
			f.AddIntent("pi_1", "requires_capture", 5000)
			f.Inject(escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 400,
				Body: `{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state","message":"This PaymentIntent could not be captured because it has a status of canceled.",` + canceledIntent + `}}`})
		}, wantGone: true, wantText: "payment_intent_unexpected_state"},
		{name: "payment_intent_unexpected_state, not canceled", setup: func(f *escrowtest.Stripe) {
			f.AddIntent("pi_1", "requires_capture", 5000)
			f.Inject(escrowtest.StripeFault{Method: "POST", Path: capturePath, Status: 400,
				Body: `{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state","message":"unexpected","payment_intent":{"id":"pi_1","object":"payment_intent","status":"requires_payment_method"}}}`})
		}, wantText: "payment_intent_unexpected_state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := setup(t)
			tc.setup(fx.fake)
			_, err := fx.pay.Capture(context.Background(), handlers.Capture{JobID: captureJob, TransactionID: "esc-1", PaymentIntentID: "pi_1"})
			noSecret(t, err)
			if !errors.Is(err, asynq.SkipRetry) {
				t.Fatalf("got %v, want a permanent error", err)
			}
			if got := errors.Is(err, payments.ErrAuthorizationGone); got != tc.wantGone {
				t.Errorf("errors.Is(err, ErrAuthorizationGone): got %v, want %v (error %v)", got, tc.wantGone, err)
			}
			if got := strings.Contains(err.Error(), "authorization expired or canceled: "); got != tc.wantGone {
				t.Errorf("error: got %q, want it to say \"authorization expired or canceled: …\": %v", err, tc.wantGone)
			}
			if !strings.HasPrefix(err.Error(), "stripe: capture pi_1: ") || !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error: got %q, want \"stripe: capture pi_1: …\" saying %q", err, tc.wantText)
			}
			if captures, _ := fx.fake.Counts(); captures != 0 {
				t.Errorf("captures: got %d, want 0", captures)
			}
		})
	}
}

// TestCaptureRequestRefusedForACanceledIntent: the authorization expires
// between the adapter's read (which still shows requires_capture) and its
// capture. The fake's refusal carries the PaymentIntent, as Stripe's does,
// and reads as a gone authorization.
func TestCaptureRequestRefusedForACanceledIntent(t *testing.T) {
	fx := setup(t)
	fx.fake.AddIntent("pi_1", "requires_capture", 5000)
	fx.fake.ExpireAuthorization("pi_1")
	fx.fake.Inject(escrowtest.StripeFault{Method: http.MethodGet, Path: "/v1/payment_intents/pi_1", Status: 200,
		Body: `{"id":"pi_1","object":"payment_intent","status":"requires_capture","amount":5000,"amount_capturable":5000}`})
	_, err := fx.pay.Capture(context.Background(), handlers.Capture{JobID: captureJob, PaymentIntentID: "pi_1"})
	if !errors.Is(err, payments.ErrAuthorizationGone) || !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), "payment_intent_unexpected_state") {
		t.Errorf("got %v, want a permanent authorization expired or canceled error from the capture request", err)
	}
	if posts := fx.fake.Posts(); len(posts) != 1 {
		t.Errorf("requests: got %d POSTs, want the one capture", len(posts))
	}
}
