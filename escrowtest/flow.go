package escrowtest

import (
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
)

// ReleaseFlow is a release flow of escrow esc in the shape of the
// example's: the capture, then the seller's e-mail and the partner's
// webhook, an independent audit and an on-failure audit. Every job names
// esc as its transaction, so it is in the escrow's history.
func ReleaseFlow(t testing.TB, esc string) *flows.Flow {
	t.Helper()
	capture := payloads.StripeCapturePayment{TransactionID: esc, PaymentIntentID: "pi_3Mtw" + strings.ReplaceAll(esc, "-", ""), AmountToCapture: 125000}
	mail := payloads.SendReleaseEmail{TransactionID: esc, RecipientEmail: "seller-" + esc + "@example.com", Amount: 125000, Currency: "USD"}
	hook := payloads.WebhookEscrowStatusChanged{EventID: "evt-" + esc + "-released", PartnerID: "partner-acme", TransactionID: esc,
		PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: "2026-11-29T10:00:00Z"}
	audit := payloads.AuditLogCreated{EventID: "evt-" + esc + "-audit", Actor: "user-1", Action: "escrow.released", TransactionID: esc, OccurredAt: "2026-11-29T10:00:00Z"}
	failAudit := payloads.AuditLogCreated{EventID: "evt-" + esc + "-release-failed", Actor: "system", Action: "escrow.release_failed", TransactionID: esc, OccurredAt: "2026-11-29T10:00:00Z"}
	f, err := flows.New("release", esc).
		Step("capture", capture).
		Step("seller-email", mail, flows.After("capture")).
		Step("partner-webhook", hook, flows.After("capture")).
		Step("audit", audit).
		OnFailure("failure-audit", failAudit).
		Build()
	if err != nil {
		t.Fatalf("release flow of %s: %v", esc, err)
	}
	return f
}
