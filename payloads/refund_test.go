package payloads_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// TestPartialRefundNeedsAReference: a partial refund (amount set) must carry
// the caller's refundId, which goes into its dedupe key; a full refund keeps
// refund-<pi>-full.
func TestPartialRefundNeedsAReference(t *testing.T) {
	ref64 := strings.Repeat("r", 63) + "9"
	cases := []struct {
		name      string
		p         payloads.StripeRefundPayment
		wantField string // "" for valid
		wantKey   string
	}{
		{"full", payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1"}, "", "refund-pi_1-full"},
		{"full with a reference", payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1", RefundID: "rf-1"}, "", "refund-pi_1-full"},
		{"partial", payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: 500, RefundID: "rf-1"}, "", "refund-pi_1-500-rf-1"},
		{"partial, another reference", payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: 500, RefundID: "rf-2"}, "", "refund-pi_1-500-rf-2"},
		{"partial, 64-character reference", payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: 500, RefundID: ref64}, "", "refund-pi_1-500-" + ref64},
		{"partial without a reference", payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: 500}, "refundId", ""},
		{"reference too long", payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: 500, RefundID: ref64 + "x"}, "refundId", ""},
		{"reference with a space", payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: 500, RefundID: "rf 1"}, "refundId", ""},
	}
	for _, c := range cases {
		err := payloads.Validate(c.p)
		if c.wantField == "" {
			if err != nil {
				t.Errorf("%s: got %v, want valid", c.name, err)
			}
			if got := c.p.DedupeKey(); got != c.wantKey {
				t.Errorf("%s: got key %q, want %q", c.name, got, c.wantKey)
			}
			continue
		}
		var ve *payloads.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != c.wantField || ve.Fields[0].Message == "" {
			t.Errorf("%s: got %v, want one bad field %s with a message", c.name, err, c.wantField)
		}
	}
}
