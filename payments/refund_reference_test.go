package payments_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/payments"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// refundOf runs the partial refund a caller asks for through the path a
// worker takes: the job built by the typed constructor, its ID as the
// idempotency key, the reference passed to the adapter.
func refundOf(t *testing.T, pay *payments.Stripe, amount int64, ref string) (handlers.PaymentResult, error) {
	t.Helper()
	p := payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: amount, RefundID: ref}
	task, err := tasks.NewStripeRefundPaymentTask(p)
	if err != nil {
		t.Fatalf("build refund %s: %v", ref, err)
	}
	return pay.Refund(context.Background(), handlers.Refund{JobID: task.ID, TransactionID: p.TransactionID,
		PaymentIntentID: p.PaymentIntentID, Amount: p.Amount, RefundID: p.RefundID, Reason: p.Reason})
}

// TestPartialRefundsOfTheSameAmount: two refunds of the same amount with
// different references are two Stripe refunds, also after Stripe forgot
// the idempotency keys (a second refund more than a day later); the same
// reference again is one refund, reported as already done; the same
// reference with another amount is a permanent error, never a silent drop;
// a full refund is matched by its job, not by a reference it carries.
func TestPartialRefundsOfTheSameAmount(t *testing.T) {
	fx := setup(t)
	fx.fake.AddIntent("pi_1", "succeeded", 5000)
	ref64 := "refund-" + strings.Repeat("x", 57)

	steps := []struct {
		name      string
		amount    int64
		ref       string
		wipeKeys  bool // Stripe forgot the idempotency keys (24 h later)
		wantDone  bool
		wantPerm  bool
		wantTotal int64 // refunded on the PaymentIntent afterwards
		wantCount int   // refunds created afterwards
	}{
		{"first 1000", 1000, "rf-a", false, false, false, 1000, 1},
		{"second 1000, another reference, a day later", 1000, ref64, true, false, false, 2000, 2},
		{"first again (a retry)", 1000, "rf-a", false, true, false, 2000, 2},
		{"first again after Stripe forgot the key", 1000, "rf-a", true, true, false, 2000, 2},
		{"reference reused for another amount", 700, "rf-a", true, false, true, 2000, 2},
		{"full refund carrying a used reference refunds the rest", 0, "rf-a", true, false, false, 5000, 3},
	}
	for _, s := range steps {
		if s.wipeKeys {
			fx.fake.ForgetKeys()
		}
		res, err := refundOf(t, fx.pay, s.amount, s.ref)
		switch {
		case s.wantPerm:
			if err == nil || !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), "refundId") {
				t.Errorf("%s: got (%+v, %v), want a permanent error naming refundId", s.name, res, err)
			}
		case err != nil:
			t.Errorf("%s: got error %v, want nil", s.name, err)
		case res.AlreadyDone != s.wantDone:
			t.Errorf("%s: got AlreadyDone %v, want %v", s.name, res.AlreadyDone, s.wantDone)
		}
		if got := fx.fake.Intent("pi_1").Refunded; got != s.wantTotal {
			t.Errorf("%s: refunded got %d, want %d", s.name, got, s.wantTotal)
		}
		if _, got := fx.fake.Counts(); got != s.wantCount {
			t.Errorf("%s: refunds created got %d, want %d", s.name, got, s.wantCount)
		}
	}
	refs := fx.fake.Refunds()
	if len(refs) != 3 {
		t.Fatalf("got %d refunds, want 3", len(refs))
	}
	for i, want := range []string{"rf-a", ref64, "rf-a"} {
		if got := refs[i].Metadata[payments.MetadataRefund]; got != want {
			t.Errorf("refund %d: metadata %s got %q, want %q", i, payments.MetadataRefund, got, want)
		}
	}
}
