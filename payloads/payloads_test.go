package payloads_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/payloads"
)

const at = "2026-11-29T10:00:00Z"

// valid is one valid payload of each of the nine types.
func valid() []payloads.Payload {
	return []payloads.Payload{
		payloads.SendReleaseEmail{TransactionID: "esc-1", RecipientEmail: "a@example.com", Amount: 1, Currency: "USD"},
		payloads.SendRefundEmail{TransactionID: "esc-1", RecipientEmail: "a@example.com", Amount: 1, Currency: "JPY", Reason: "line one\nline two"},
		payloads.SendDisputeEmail{TransactionID: "esc-1", DisputeID: "d.1", RecipientEmail: "a@example.com", Reason: "r"},
		payloads.SendPaymentConfirmedEmail{TransactionID: "esc_1", PaymentIntentID: "pi_3MtwBwLkdIwHu7ix28a3tqPa", RecipientEmail: "a@example.com", Amount: 1, Currency: "EUR"},
		payloads.StripeCapturePayment{TransactionID: "esc-1", PaymentIntentID: "pi_1"},
		payloads.StripeRefundPayment{TransactionID: "esc-1", PaymentIntentID: "pi_1", Amount: 5, RefundID: "rf-1", Reason: "fraudulent"},
		payloads.WebhookEscrowStatusChanged{EventID: "e", PartnerID: "p", TransactionID: "t", PreviousStatus: "pending", Status: "cancelled", OccurredAt: "2026-11-29T10:00:00.123+01:00"},
		payloads.NotifyDisputeResolved{DisputeID: "d", TransactionID: "t", Resolution: "refund_to_buyer", BuyerEmail: "b@example.com", SellerEmail: "s@example.com"},
		payloads.AuditLogCreated{EventID: "e", Actor: "a", Action: "x.y", OccurredAt: at, Metadata: []byte(`{"k":[1,2]}`)},
	}
}

func TestValidPayloadsPass(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range valid() {
		if err := payloads.Validate(p); err != nil {
			t.Errorf("%s: got %v, want nil", p.TaskType(), err)
		}
		if seen[p.TaskType()] {
			t.Errorf("task type %s declared twice", p.TaskType())
		}
		seen[p.TaskType()] = true
		if payloads.TimeoutOf(p) <= 0 || payloads.QueueOf(p) == "" || p.DedupeKey() == "" {
			t.Errorf("%s: got timeout %v, queue %q, key %q; want all set", p.TaskType(), payloads.TimeoutOf(p), payloads.QueueOf(p), p.DedupeKey())
		}
	}
	if len(seen) != 9 {
		t.Errorf("got %d task types, want 9", len(seen))
	}
}

func TestValidationNamesFields(t *testing.T) {
	cases := []struct {
		p     payloads.Payload
		field string
	}{
		{payloads.SendReleaseEmail{TransactionID: "esc 1", RecipientEmail: "a@example.com", Amount: 1, Currency: "USD"}, "transactionId"},
		{payloads.SendReleaseEmail{TransactionID: "e", RecipientEmail: "a@example.com", Amount: 100000000001, Currency: "USD"}, "amount"},
		{payloads.SendReleaseEmail{TransactionID: "e", RecipientEmail: "a@example.com", Amount: 1, Currency: "XXY"}, "currency"},
		{payloads.SendReleaseEmail{TransactionID: "e", RecipientEmail: "a@example.com", Amount: 1, Currency: "USD", RecipientName: "A\nB"}, "recipientName"},
		{payloads.SendRefundEmail{TransactionID: "e", RecipientEmail: "a@example.com", Amount: 1, Currency: "USD", Reason: "bell\a"}, "reason"},
		{payloads.SendRefundEmail{TransactionID: "e", RecipientEmail: strings.Repeat("a", 250) + "@example.com", Amount: 1, Currency: "USD"}, "recipientEmail"},
		{payloads.StripeRefundPayment{TransactionID: "e", PaymentIntentID: "pi_"}, "paymentIntentId"},
		{payloads.WebhookEscrowStatusChanged{EventID: "e", PartnerID: "p", TransactionID: "t", PreviousStatus: "nope", Status: "funded", OccurredAt: at}, "previousStatus"},
		{payloads.WebhookEscrowStatusChanged{EventID: "e", PartnerID: "p", TransactionID: "t", PreviousStatus: "pending", Status: "funded", OccurredAt: "2026-11-29 10:00:00"}, "occurredAt"},
		{payloads.AuditLogCreated{EventID: "e", Actor: "a", Action: "x", OccurredAt: at, Metadata: []byte(`[1]`)}, "metadata"},
		{payloads.AuditLogCreated{EventID: "e", Actor: "a b", Action: "x", OccurredAt: at}, "actor"},
	}
	for _, c := range cases {
		err := payloads.Validate(c.p)
		var ve *payloads.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != c.field {
			t.Errorf("%s %+v: got %v, want one bad field %s", c.p.TaskType(), c.p, err, c.field)
		}
	}
}

func TestMaskEmails(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"recipientEmail":"jane.doe@example.com"}`, `{"recipientEmail":"j***@example.com"}`},
		{"send to a+b@mail.example.co.uk and c@d.io", "send to a***@mail.example.co.uk and c***@d.io"},
		{"no address here @ all", "no address here @ all"},
		// Typos the validator refuses are still addresses: masked whole.
		{"refused jane.@example.com and jane..doe@example.com", "refused j***@example.com and j***@example.com"},
		{`unknown field ".@0.0"`, `unknown field ".***@0.0"`},
	}
	for _, c := range cases {
		if got := payloads.MaskEmailsString(c.in); got != c.want {
			t.Errorf("MaskEmailsString(%q): got %q, want %q", c.in, got, c.want)
		}
	}
	if got := string(payloads.MaskedJSON([]byte("\xffx@y.com"))); got != `"\ufffdx***@y.com"` {
		t.Errorf("MaskedJSON of garbage: got %s", got)
	}
}

func TestRecipientHashIsStableAndCaseInsensitive(t *testing.T) {
	a, b := payloads.RecipientHash("Jane@Example.com "), payloads.RecipientHash("jane@example.com")
	if a != b || len(a) != 16 || strings.Contains(a, "@") {
		t.Errorf("got %q and %q, want equal 16-hex hashes", a, b)
	}
}

// TestSharedRulesReportThePlainRule: a failure inside an alias (recipient,
// amount, amountorall) names the field and says what the plain rule that
// failed wants, as if it were written out in the tag.
func TestSharedRulesReportThePlainRule(t *testing.T) {
	long := strings.Repeat("a", 250) + "@example.com"
	cases := []struct {
		p            payloads.Payload
		field, wantM string
	}{
		{payloads.SendDisputeEmail{TransactionID: "t", DisputeID: "d", Reason: "r"}, "recipientEmail", "is required"},
		{payloads.SendPaymentConfirmedEmail{TransactionID: "t", PaymentIntentID: "pi_1", RecipientEmail: long, Amount: 1, Currency: "USD"}, "recipientEmail", "must be at most 254 characters"},
		{payloads.NotifyDisputeResolved{DisputeID: "d", TransactionID: "t", Resolution: "split", BuyerEmail: "b@example.com", SellerEmail: "nope"}, "sellerEmail", "must be a valid e-mail address"},
		{payloads.SendReleaseEmail{TransactionID: "t", RecipientEmail: "a@example.com\u202e", Amount: 1, Currency: "USD"}, "recipientEmail", "must not contain line breaks, control characters or invisible formatting characters (such as bidi overrides)"},
		{payloads.SendRefundEmail{TransactionID: "t", RecipientEmail: "a@example.com", Amount: -1, Currency: "USD"}, "amount", "must be greater than 0"},
		{payloads.SendPaymentConfirmedEmail{TransactionID: "t", PaymentIntentID: "pi_1", RecipientEmail: "a@example.com", Amount: 100000000001, Currency: "USD"}, "amount", "must be at most 100000000000"},
		{payloads.StripeCapturePayment{TransactionID: "t", PaymentIntentID: "pi_1", AmountToCapture: -1}, "amountToCapture", "must be at least 0"},
		{payloads.StripeRefundPayment{TransactionID: "t", PaymentIntentID: "pi_1", Amount: 100000000001, RefundID: "rf-1"}, "amount", "must be at most 100000000000"},
	}
	for _, c := range cases {
		err := payloads.Validate(c.p)
		var ve *payloads.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0] != (payloads.FieldError{Field: c.field, Message: c.wantM}) {
			t.Errorf("%s: got %v, want one bad field %s: %s", c.p.TaskType(), err, c.field, c.wantM)
		}
	}
	if got := payloads.AddressFields(payloads.SendRefundEmail{}); len(got) != 1 || got[0] != "recipientEmail" {
		t.Errorf("AddressFields(SendRefundEmail): got %v, want [recipientEmail]", got)
	}
}
