package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// actor is who the audit log says made the change.
const actor = "escrow-api"

// eventID is the stable ID of one escrow's event (its webhook and audit
// record): the same transition always yields the same ID, and it fits the
// 64-character identifier limit whatever the escrow ID's length.
func eventID(escrowID, action string) string {
	sum := sha256.Sum256([]byte(escrowID + "/" + action))
	return "ev-" + hex.EncodeToString(sum[:20])
}

// jobs collects the side-effect tasks of one transition, and the field
// errors of the ones that failed validation, renamed to the request's
// field names.
type jobs struct {
	tasks  []*tasks.Task
	fields []payloads.FieldError
	err    error // an error that is not about a field
}

// add keeps t, or turns err's field errors into request field errors:
// rename maps a payload field (transactionId) to the request's (id); a
// payload field missing from rename is named as it is.
func (j *jobs) add(t *tasks.Task, err error, rename map[string]string) {
	if err == nil {
		j.tasks = append(j.tasks, t)
		return
	}
	var ve *payloads.ValidationError
	if !errors.As(err, &ve) {
		j.err = errors.Join(j.err, err)
		return
	}
	for _, f := range ve.Fields {
		if to, ok := rename[f.Field]; ok {
			f.Field = to
		}
		if !j.has(f.Field) {
			j.fields = append(j.fields, f)
		}
	}
}

// to returns add with rename bound, so a constructor's two results can be
// passed straight in: j.to(idField)(tasks.NewXTask(…)).
func (j *jobs) to(rename map[string]string) func(*tasks.Task, error) {
	return func(t *tasks.Task, err error) { j.add(t, err, rename) }
}

// checkAs validates a payload without keeping its task: for a field the
// request carries now but a later job uses (the seller's address at
// creation).
func (j *jobs) checkAs(rename map[string]string) func(*tasks.Task, error) {
	return func(_ *tasks.Task, err error) {
		if err != nil {
			j.add(nil, err, rename)
		}
	}
}

func (j *jobs) has(field string) bool {
	for _, f := range j.fields {
		if f.Field == field {
			return true
		}
	}
	return false
}

// result is the tasks, or a *requestError naming the bad fields.
func (j *jobs) result() ([]*tasks.Task, error) {
	if len(j.fields) > 0 {
		return nil, &requestError{Fields: j.fields}
	}
	if j.err != nil {
		return nil, j.err
	}
	return j.tasks, nil
}

// audit is the audit_log_created job of one transition.
func (j *jobs) audit(e escrow, action string, at time.Time, meta map[string]string) {
	m, _ := json.Marshal(meta)
	j.to(idField)(tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{
		EventID: eventID(e.ID, action), Actor: actor, Action: "escrow." + action,
		TransactionID: e.ID, OccurredAt: at.UTC().Format(time.RFC3339), Metadata: m,
	}))
}

// webhook is the partner's status-changed job, when the escrow has a partner.
func (j *jobs) webhook(e escrow, action, to string, at time.Time) {
	if e.PartnerID == "" {
		return
	}
	j.to(idField)(tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
		EventID: eventID(e.ID, action), PartnerID: e.PartnerID, TransactionID: e.ID,
		PreviousStatus: e.Status, Status: to, OccurredAt: at.UTC().Format(time.RFC3339),
	}))
}

var idField = map[string]string{"transactionId": "id"}

// createJobs: the payment-confirmed e-mail to the buyer and the audit
// record. The seller's address and the partner ID are checked now, by the
// payloads that will carry them later.
func createJobs(e escrow, at time.Time) ([]*tasks.Task, error) {
	var j jobs
	j.to(map[string]string{"transactionId": "id", "recipientEmail": "buyerEmail"})(tasks.NewSendPaymentConfirmedEmailTask(payloads.SendPaymentConfirmedEmail{
		TransactionID: e.ID, PaymentIntentID: e.PaymentIntentID, RecipientEmail: e.BuyerEmail,
		Amount: e.Amount, Currency: e.Currency,
	}))
	j.checkAs(map[string]string{"transactionId": "id", "recipientEmail": "sellerEmail"})(tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{
		TransactionID: e.ID, RecipientEmail: e.SellerEmail, Amount: max(e.Amount, 1), Currency: "EUR",
	}))
	if e.PartnerID != "" {
		j.checkAs(nil)(tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
			EventID: "check", PartnerID: e.PartnerID, TransactionID: "check",
			PreviousStatus: payloads.StatusPending, Status: payloads.StatusFunded, OccurredAt: at.UTC().Format(time.RFC3339),
		}))
	}
	if len(j.fields) == 0 {
		j.audit(e, "created", at, map[string]string{"status": payloads.StatusFunded})
	}
	return j.result()
}

// releaseJobs: capture the payment, tell the seller, the partner and the
// audit log.
func releaseJobs(e escrow, at time.Time) ([]*tasks.Task, error) {
	var j jobs
	j.to(idField)(tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{
		TransactionID: e.ID, PaymentIntentID: e.PaymentIntentID,
	}))
	j.to(idField)(tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{
		TransactionID: e.ID, RecipientEmail: e.SellerEmail, Amount: e.Amount, Currency: e.Currency,
	}))
	j.webhook(e, "released", payloads.StatusReleased, at)
	j.audit(e, "released", at, map[string]string{"status": payloads.StatusReleased})
	return j.result()
}

// refundJobs: refund the payment in full, tell the buyer, the partner and
// the audit log. reason is Stripe's (duplicate, fraudulent,
// requested_by_customer) or empty.
func refundJobs(e escrow, reason string, at time.Time) ([]*tasks.Task, error) {
	var j jobs
	j.to(idField)(tasks.NewStripeRefundPaymentTask(payloads.StripeRefundPayment{
		TransactionID: e.ID, PaymentIntentID: e.PaymentIntentID, Reason: reason,
	}))
	j.to(idField)(tasks.NewSendRefundEmailTask(payloads.SendRefundEmail{
		TransactionID: e.ID, RecipientEmail: e.BuyerEmail, Amount: e.Amount, Currency: e.Currency,
		Reason: refundReasonText[reason],
	}))
	j.webhook(e, "refunded", payloads.StatusRefunded, at)
	j.audit(e, "refunded", at, map[string]string{"status": payloads.StatusRefunded, "reason": reason})
	return j.result()
}

var refundReasonText = map[string]string{
	payloads.RefundDuplicate:           "The payment was a duplicate.",
	payloads.RefundFraudulent:          "The payment was reported as fraudulent.",
	payloads.RefundRequestedByCustomer: "You asked for a refund.",
}

// disputeJobs: the dispute e-mail to both parties, the partner's webhook and
// the audit record.
func disputeJobs(e escrow, disputeID, reason string, at time.Time) ([]*tasks.Task, error) {
	var j jobs
	for _, to := range []string{e.BuyerEmail, e.SellerEmail} {
		j.to(idField)(tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{
			TransactionID: e.ID, DisputeID: disputeID, RecipientEmail: to, Reason: reason,
		}))
	}
	j.webhook(e, "disputed", payloads.StatusDisputed, at)
	j.audit(e, "disputed", at, map[string]string{"status": payloads.StatusDisputed, "disputeId": disputeID})
	return j.result()
}

// resolveJobs: notify_dispute_resolved (which fans out into the e-mails and
// the webhook) and the audit record.
func resolveJobs(e escrow, resolution string, at time.Time) ([]*tasks.Task, error) {
	var j jobs
	j.to(idField)(tasks.NewNotifyDisputeResolvedTask(payloads.NotifyDisputeResolved{
		DisputeID: e.DisputeID, TransactionID: e.ID, Resolution: resolution,
		BuyerEmail: e.BuyerEmail, SellerEmail: e.SellerEmail, PartnerID: e.PartnerID,
	}))
	if len(j.fields) == 0 {
		j.audit(e, "resolved", at, map[string]string{"status": payloads.StatusResolved, "resolution": resolution})
	}
	return j.result()
}
