package email_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
)

func TestRender(t *testing.T) {
	const to = "jane.doe@example.com"
	for _, tc := range kindCases(to) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := email.Render(handlers.Mail{JobID: "job-1", To: to, Data: tc.data})
			if err != nil {
				t.Fatalf("Render: got error %v, want nil", err)
			}
			if got.Subject != tc.subject {
				t.Errorf("subject: got %q, want %q", got.Subject, tc.subject)
			}
			tc.checkBodies(t, got.Text, got.HTML)
			if !strings.Contains(got.HTML, "<title>"+tc.subject+"</title>") {
				t.Errorf("html: got %q, want the subject as title", got.HTML)
			}
		})
	}
}

func TestRenderUnknownPayloadIsPermanent(t *testing.T) {
	for _, data := range []payloads.Payload{nil, payloads.StripeRefundPayment{}, &payloads.SendReleaseEmail{}} {
		_, err := email.Render(handlers.Mail{JobID: "job-1", To: "a@example.com", Data: data})
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("Render(%T): got error %v, want one wrapping asynq.SkipRetry", data, err)
		}
	}
}

func TestRenderKeepsControlCharactersOutOfTheSubject(t *testing.T) {
	got, err := email.Render(handlers.Mail{JobID: "job-1", To: "a@example.com", Data: payloads.SendDisputeEmail{
		TransactionID: "esc-1\r\nBcc: x@example.com", DisputeID: "dsp-1", RecipientEmail: "a@example.com", Reason: "r",
	}})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if strings.ContainsAny(got.Subject, "\r\n") {
		t.Errorf("subject: got %q, want no line break", got.Subject)
	}
}

func TestFormatAmount(t *testing.T) {
	for _, tc := range []struct {
		minor    int64
		currency string
		want     string
	}{
		{12345, "USD", "123.45 USD"},
		{5, "EUR", "0.05 EUR"},
		{100, "eur", "1.00 EUR"},
		{0, "USD", "0.00 USD"},
		{1200, "JPY", "1200 JPY"},
		{7, "KRW", "7 KRW"},
		{1234, "KWD", "1.234 KWD"},
		{5, "BHD", "0.005 BHD"},
		{12345, "CLF", "1.2345 CLF"},
		{-250, "GBP", "-2.50 GBP"},
		{100000000000, "USD", "1000000000.00 USD"},
	} {
		if got := email.FormatAmount(tc.minor, tc.currency); got != tc.want {
			t.Errorf("FormatAmount(%d, %q): got %q, want %q", tc.minor, tc.currency, got, tc.want)
		}
	}
}

func TestIDsAreStablePerJob(t *testing.T) {
	a, b := "send_release_email:escrow-esc-1-release-0011", "send_release_email:escrow-esc-2-release-0011"
	if got, want := email.MessageID(a, "example.com"), email.MessageID(a, "example.com"); got != want {
		t.Errorf("MessageID twice: got %q and %q, want equal", got, want)
	}
	if email.MessageID(a, "example.com") == email.MessageID(b, "example.com") {
		t.Errorf("MessageID of two jobs: got equal %q, want different", email.MessageID(a, "example.com"))
	}
	if got := email.MessageID(a, "example.com"); !strings.HasSuffix(got, "@example.com") || len(got) != 32+len("@example.com") {
		t.Errorf("MessageID: got %q, want 32 hex digits @example.com", got)
	}
	if ka := email.IdempotencyKey(a); ka != email.IdempotencyKey(a) || ka == email.IdempotencyKey(b) {
		t.Errorf("IdempotencyKey: got %q for a and %q for b, want stable per job and different across jobs", email.IdempotencyKey(a), email.IdempotencyKey(b))
	}
}
