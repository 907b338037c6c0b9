package payments

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/stripe/stripe-go/v76"
)

// The tests against stripe-mock check the wire format: stripe-go's
// requests as this package builds them are valid for the OpenAPI spec, and
// the answers decode. stripe-mock keeps no state and answers from fixtures,
// so the state and idempotency paths are tested against the fake in
// stripe_test.go.

func startStripeMock(t *testing.T) *Stripe {
	t.Helper()
	base := peertest.StartStripeMock(t)
	s, err := NewStripe(StripeConfig{SecretKey: peertest.StripeMockKey, APIBase: base}, nil)
	if err != nil {
		t.Fatalf("NewStripe: %v", err)
	}
	return s
}

func TestStripeMockRefund(t *testing.T) {
	s := startStripeMock(t)

	// stripe-mock's PaymentIntent fixture is in requires_payment_method:
	// nothing was authorised, so Refund reads it and stops, permanently.
	_, err := s.Refund(context.Background(), handlers.Refund{JobID: "stripe_refund_payment:refund-pi_123-full", PaymentIntentID: "pi_123"})
	if !retry.IsPermanent(err) || !strings.Contains(err.Error(), "requires_payment_method") {
		t.Errorf("Refund: got %v, want a permanent error naming status requires_payment_method (stripe-mock's fixture)", err)
	}

	// The requests themselves, as Refund sends them for a captured
	// PaymentIntent (a refund) and for an uncaptured one (a cancel).
	for _, tc := range []struct {
		name   string
		cancel bool
		r      handlers.Refund
	}{
		{name: "full", r: handlers.Refund{JobID: "stripe_refund_payment:refund-pi_123-full", TransactionID: "esc-1", PaymentIntentID: "pi_123"}},
		{name: "partial with reason", r: handlers.Refund{JobID: "stripe_refund_payment:refund-pi_123-500-rf-1", TransactionID: "esc-1", PaymentIntentID: "pi_123", Amount: 500, RefundID: "rf-1", Reason: "requested_by_customer"}},
		{name: "cancel", cancel: true, r: handlers.Refund{JobID: "stripe_refund_payment:refund-pi_123-full", TransactionID: "esc-1", PaymentIntentID: "pi_123"}},
		{name: "cancel with reason", cancel: true, r: handlers.Refund{JobID: "stripe_refund_payment:refund-pi_123-full", PaymentIntentID: "pi_123", Reason: "fraudulent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cancel {
				got, err := s.cancel(context.Background(), "refund pi_123", tc.r)
				// The fixture answers with its own status; the request was valid.
				if err != nil || got.ID != "pi_123" || got.Status == "" || got.AlreadyDone {
					t.Errorf("cancel request: got (%+v, %v), want pi_123 with a status", got, err)
				}
				return
			}
			// stripe-mock's refund list fixture carries no metadata, so no
			// refund is ours and a new one is created.
			got, err := s.refund(context.Background(), "refund pi_123", tc.r)
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if !strings.HasPrefix(got.ID, "re_") || got.Status != "succeeded" || got.AlreadyDone {
				t.Errorf("got %+v, want a new refund re_… succeeded", got)
			}
		})
	}
}

func TestStripeMockRefundAndCancelWithBadReasonArePermanent(t *testing.T) {
	s := startStripeMock(t)
	r := handlers.Refund{JobID: "job-1", PaymentIntentID: "pi_123", Reason: "because"}
	_, rerr := s.refund(context.Background(), "refund pi_123", r)
	_, cerr := s.cancel(context.Background(), "refund pi_123", r)
	for op, err := range map[string]error{"refund": rerr, "cancel": cerr} {
		var se *stripe.Error
		if !retry.IsPermanent(err) || !errors.As(err, &se) || se.Type != stripe.ErrorTypeInvalidRequest || se.HTTPStatusCode != 400 {
			t.Errorf("%s: got %v, want a permanent 400 invalid_request_error", op, err)
		}
	}
}

func TestStripeMockCapture(t *testing.T) {
	s := startStripeMock(t)
	c := handlers.Capture{JobID: "stripe_capture_payment:capture-pi_123", TransactionID: "esc-1", PaymentIntentID: "pi_123"}

	// stripe-mock's PaymentIntent fixture is in requires_payment_method,
	// which cannot be captured: Capture reads it and stops, permanently.
	_, err := s.Capture(context.Background(), c)
	if !retry.IsPermanent(err) || !strings.Contains(err.Error(), "requires_payment_method") {
		t.Errorf("Capture: got %v, want a permanent error naming status requires_payment_method (stripe-mock's fixture)", err)
	}

	// The capture request itself, as Capture sends it for requires_capture.
	for _, amount := range []int64{0, 700} {
		c.Amount = amount
		got, err := s.capture(context.Background(), IdempotencyKey(c.JobID), c)
		if err != nil {
			t.Fatalf("capture request, amount %d: got error %v, want nil", amount, err)
		}
		// The fixture has no latest_charge, so the result falls back to the PaymentIntent.
		if got.ID != "pi_123" || got.Status == "" {
			t.Errorf("capture request, amount %d: got %+v, want ID pi_123 and a status", amount, got)
		}
	}
}
