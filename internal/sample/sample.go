// Package sample makes typical payloads of the nine job types, for the
// benchmarks and the load command: realistic sizes, unique IDs.
package sample

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Payload is the i-th payload of the nine-type mix (i % 9 picks the type).
// seq makes its IDs unique: letters, digits and '-'.
func Payload(i int, seq string) payloads.Payload {
	tx, pi := "esc-"+seq, "pi_3Mtw"+strings.ReplaceAll(seq, "-", "")
	const at = "2026-11-29T10:00:00Z"
	switch i % 9 {
	case 0:
		return payloads.SendReleaseEmail{TransactionID: tx, RecipientEmail: "seller-" + seq + "@example.com", Amount: 125000, Currency: "USD", RecipientName: "Jane Seller"}
	case 1:
		return payloads.SendRefundEmail{TransactionID: tx, RecipientEmail: "buyer-" + seq + "@example.com", Amount: 4999, Currency: "EUR", Reason: "The item did not arrive."}
	case 2:
		return payloads.SendDisputeEmail{TransactionID: tx, DisputeID: "dsp-" + seq, RecipientEmail: "seller-" + seq + "@example.com", Reason: "The buyer says the item is not as described."}
	case 3:
		return payloads.SendPaymentConfirmedEmail{TransactionID: tx, PaymentIntentID: pi, RecipientEmail: "buyer-" + seq + "@example.com", Amount: 125000, Currency: "USD"}
	case 4:
		return payloads.StripeCapturePayment{TransactionID: tx, PaymentIntentID: pi, AmountToCapture: 125000}
	case 5:
		return payloads.StripeRefundPayment{TransactionID: tx, PaymentIntentID: pi, Amount: 4999, RefundID: "rf-" + seq, Reason: payloads.RefundRequestedByCustomer}
	case 6:
		return payloads.WebhookEscrowStatusChanged{EventID: "evt-" + seq, PartnerID: "partner-acme", TransactionID: tx, PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: at}
	case 7:
		return payloads.NotifyDisputeResolved{DisputeID: "dsp-" + seq, TransactionID: tx, Resolution: payloads.ResolutionSplit, BuyerEmail: "buyer-" + seq + "@example.com", SellerEmail: "seller-" + seq + "@example.com", PartnerID: "partner-acme"}
	default:
		return payloads.AuditLogCreated{EventID: "evt-" + seq, Actor: "user-48213", Action: "escrow.released", TransactionID: tx, OccurredAt: at,
			Metadata: json.RawMessage(`{"ip":"203.0.113.7","userAgent":"escrow-web/4.2","amount":125000,"currency":"USD"}`)}
	}
}

// Build calls the typed constructor of p's type, as a producer does.
func Build(p payloads.Payload) (*tasks.Task, error) {
	switch p := p.(type) {
	case payloads.SendReleaseEmail:
		return tasks.NewSendReleaseEmailTask(p)
	case payloads.SendRefundEmail:
		return tasks.NewSendRefundEmailTask(p)
	case payloads.SendDisputeEmail:
		return tasks.NewSendDisputeEmailTask(p)
	case payloads.SendPaymentConfirmedEmail:
		return tasks.NewSendPaymentConfirmedEmailTask(p)
	case payloads.StripeCapturePayment:
		return tasks.NewStripeCapturePaymentTask(p)
	case payloads.StripeRefundPayment:
		return tasks.NewStripeRefundPaymentTask(p)
	case payloads.WebhookEscrowStatusChanged:
		return tasks.NewWebhookEscrowStatusChangedTask(p)
	case payloads.NotifyDisputeResolved:
		return tasks.NewNotifyDisputeResolvedTask(p)
	case payloads.AuditLogCreated:
		return tasks.NewAuditLogCreatedTask(p)
	}
	return nil, fmt.Errorf("no constructor for %T", p)
}
