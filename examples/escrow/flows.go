package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Every transition is one flow, named after it, keyed by the escrow ID
// ("release:esc-123"). The money step comes first; what tells a customer
// or the partner that money moved runs after it, so a capture or refund
// that fails for good tells nobody anything but the audit log (the
// on-failure step).

// Flow names, one per transition.
const (
	flowFund    = "fund"
	flowRelease = "release"
	flowRefund  = "refund"
	flowDispute = "dispute"
	flowResolve = "resolve"
)

// flowNames are the flows an escrow can have, in the order they can happen.
var flowNames = []string{flowFund, flowRelease, flowRefund, flowDispute, flowResolve}

// plan is one transition's flow while it is written: each step's job is
// checked by its typed constructor as it is added, so that a bad request
// is a 400 naming every bad field (Build stops at the first bad step).
type plan struct {
	id string // the flow's
	b  *flows.Builder
	j  jobs
	// jobs and failureJobs are the job IDs of the steps and of the
	// on-failure steps, in the order they were added.
	jobs, failureJobs []string
}

func newPlan(name, key string) *plan { return &plan{id: flows.ID(name, key), b: flows.New(name, key)} }

// step adds step name running job; rename maps the payload's field names to
// the request's for the 400.
func (p *plan) step(name string, job tasks.Payload, rename map[string]string, opts ...flows.StepOption) *plan {
	p.jobs = p.check(p.jobs, job, rename)
	p.b.Step(name, job, opts...)
	return p
}

// onFailure adds an on-failure step.
func (p *plan) onFailure(name string, job tasks.Payload) *plan {
	p.failureJobs = p.check(p.failureJobs, job, idField)
	p.b.OnFailure(name, job)
	return p
}

// check checks job with its constructor and appends its ID to ids.
func (p *plan) check(ids []string, job tasks.Payload, rename map[string]string) []string {
	t, err := tasks.New(job)
	p.j.add(t, err, rename)
	if err != nil {
		return ids
	}
	return append(ids, t.ID)
}

// build is the flow, or the request's field errors.
func (p *plan) build() (*flows.Flow, error) {
	if err := p.j.check(); err != nil {
		return nil, err
	}
	f, err := p.b.Build()
	if err != nil {
		return nil, fmt.Errorf("build flow: %w", err)
	}
	return f, nil
}

// auditEvent is the audit_log_created job of one event of escrow e.
func auditEvent(e escrow, action string, at time.Time, meta map[string]string) payloads.AuditLogCreated {
	m, _ := json.Marshal(meta)
	return payloads.AuditLogCreated{
		EventID: eventID(e.ID, action), Actor: actor, Action: "escrow." + action,
		TransactionID: e.ID, OccurredAt: at.UTC().Format(time.RFC3339), Metadata: m,
	}
}

// failureAudit is the on-failure audit record of flow name of e: its money
// step (moneyStep) or a step after it failed for good. The audit handler
// adds the failed step, its error and the steps completed by then to the
// metadata ("failedStep", "failure", "completedSteps": moneyStep among
// them means the money moved); GET /escrows/{id} shows the first two too.
func failureAudit(e escrow, name, action, moneyStep string, at time.Time) payloads.AuditLogCreated {
	return auditEvent(e, action, at, map[string]string{
		"status": action, "flowId": flows.ID(name, e.ID), "moneyStep": moneyStep,
		"reason": "a step of flow " + flows.ID(name, e.ID) + " failed for good; money moved only if " + moneyStep + " is in completedSteps, and nobody was told it did otherwise",
	})
}

// webhook adds the partner's status-changed step, when e has a partner.
func (p *plan) webhook(e escrow, action, from, to string, at time.Time, opts ...flows.StepOption) *plan {
	if e.PartnerID == "" {
		return p
	}
	return p.step("partner-webhook", payloads.WebhookEscrowStatusChanged{
		EventID: eventID(e.ID, action), PartnerID: e.PartnerID, TransactionID: e.ID,
		PreviousStatus: from, Status: to, OccurredAt: at.UTC().Format(time.RFC3339),
	}, idField, opts...)
}

// fundFlow: the payment-confirmed e-mail to the buyer, the partner's
// "funded" webhook and the audit record. The seller's address is checked
// now, by the payload that will carry it at the release.
func fundFlow(e escrow, at time.Time) *plan {
	p := newPlan(flowFund, e.ID).
		step("buyer-email", payloads.SendPaymentConfirmedEmail{
			TransactionID: e.ID, PaymentIntentID: e.PaymentIntentID, RecipientEmail: e.BuyerEmail,
			Amount: e.Amount, Currency: e.Currency,
		}, map[string]string{"transactionId": "id", "recipientEmail": "buyerEmail"})
	p.j.checkAs(map[string]string{"transactionId": "id", "recipientEmail": "sellerEmail"})(tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{
		TransactionID: e.ID, RecipientEmail: e.SellerEmail, Amount: max(e.Amount, 1), Currency: "EUR",
	}))
	return p.webhook(e, "funded", payloads.StatusPending, payloads.StatusFunded, at).
		step("audit", auditEvent(e, "created", at, map[string]string{"status": payloads.StatusFunded}), idField)
}

// releaseFlow: capture the payment; once captured, tell the seller and the
// partner. A capture that fails for good is audited as release_failed.
func releaseFlow(e escrow, at time.Time) *plan {
	return newPlan(flowRelease, e.ID).
		step("capture", payloads.StripeCapturePayment{TransactionID: e.ID, PaymentIntentID: e.PaymentIntentID}, idField).
		step("seller-email", payloads.SendReleaseEmail{
			TransactionID: e.ID, RecipientEmail: e.SellerEmail, Amount: e.Amount, Currency: e.Currency,
		}, idField, flows.After("capture")).
		webhook(e, "released", payloads.StatusFunded, payloads.StatusReleased, at, flows.After("capture")).
		step("audit", auditEvent(e, "release_requested", at, map[string]string{"status": statusReleasing}), idField).
		onFailure("failure-audit", failureAudit(e, flowRelease, "release_failed", "capture", at))
}

// refundFlow: refund the payment in full (the refund job cancels a
// PaymentIntent that was never captured, which releases the hold); once
// done, tell the buyer and the partner. reason is Stripe's (duplicate,
// fraudulent, requested_by_customer) or empty.
func refundFlow(e escrow, reason string, at time.Time) *plan {
	return newPlan(flowRefund, e.ID).
		step("refund", payloads.StripeRefundPayment{TransactionID: e.ID, PaymentIntentID: e.PaymentIntentID, Reason: reason}, idField).
		step("buyer-email", payloads.SendRefundEmail{
			TransactionID: e.ID, RecipientEmail: e.BuyerEmail, Amount: e.Amount, Currency: e.Currency,
			Reason: refundReasonText[reason],
		}, idField, flows.After("refund")).
		webhook(e, "refunded", payloads.StatusFunded, payloads.StatusRefunded, at, flows.After("refund")).
		step("audit", auditEvent(e, "refund_requested", at, map[string]string{"status": statusRefunding, "reason": reason}), idField).
		onFailure("failure-audit", failureAudit(e, flowRefund, "refund_failed", "refund", at))
}

var refundReasonText = map[string]string{
	payloads.RefundDuplicate:           "The payment was a duplicate.",
	payloads.RefundFraudulent:          "The payment was reported as fraudulent.",
	payloads.RefundRequestedByCustomer: "You asked for a refund.",
}

// disputeFlow: the dispute e-mail to both parties, the partner's webhook
// and the audit record. No money moves.
func disputeFlow(e escrow, disputeID, reason string, at time.Time) *plan {
	p := newPlan(flowDispute, e.ID)
	for _, party := range []struct{ step, to string }{{"buyer-email", e.BuyerEmail}, {"seller-email", e.SellerEmail}} {
		p.step(party.step, payloads.SendDisputeEmail{
			TransactionID: e.ID, DisputeID: disputeID, RecipientEmail: party.to, Reason: reason,
		}, idField)
	}
	return p.webhook(e, "disputed", payloads.StatusFunded, payloads.StatusDisputed, at).
		step("audit", auditEvent(e, "disputed", at, map[string]string{"status": payloads.StatusDisputed, "disputeId": disputeID}), idField)
}

// resolveFlow: the money step of the resolution (release_to_seller:
// capture; refund_to_buyer: refund, or cancel when uncaptured; split:
// capture sellerAmount, which releases the rest of the hold), then
// notify_dispute_resolved (its e-mails and webhook). sellerAmount is
// checked here: required for split, 0 < sellerAmount < amount, and only
// for split.
func resolveFlow(e escrow, resolution string, sellerAmount *int64, at time.Time) *plan {
	p := newPlan(flowResolve, e.ID)
	money := moneyStepOf(resolution)
	switch {
	case resolution == payloads.ResolutionSplit && sellerAmount == nil:
		p.j.field(payloads.FieldError{Field: "sellerAmount", Message: "is required for a split (the part of " + strconv.FormatInt(e.Amount, 10) + " the seller gets)"})
	case resolution == payloads.ResolutionSplit && (*sellerAmount <= 0 || *sellerAmount >= e.Amount):
		p.j.field(payloads.FieldError{Field: "sellerAmount", Message: "must be more than 0 and less than the amount " + strconv.FormatInt(e.Amount, 10)})
	case resolution != payloads.ResolutionSplit && sellerAmount != nil:
		p.j.field(payloads.FieldError{Field: "sellerAmount", Message: "is only for the resolution split"})
	}
	switch resolution {
	case payloads.ResolutionReleaseToSeller:
		p.step(money, payloads.StripeCapturePayment{TransactionID: e.ID, PaymentIntentID: e.PaymentIntentID}, idField)
	case payloads.ResolutionRefundToBuyer:
		p.step(money, payloads.StripeRefundPayment{TransactionID: e.ID, PaymentIntentID: e.PaymentIntentID}, idField)
	case payloads.ResolutionSplit:
		if sellerAmount != nil {
			p.step(money, payloads.StripeCapturePayment{TransactionID: e.ID, PaymentIntentID: e.PaymentIntentID, AmountToCapture: *sellerAmount},
				map[string]string{"transactionId": "id", "amountToCapture": "sellerAmount"})
		}
	}
	var after []flows.StepOption
	if money != "" {
		after = append(after, flows.After(money))
	}
	p.step("notify", payloads.NotifyDisputeResolved{
		DisputeID: e.DisputeID, TransactionID: e.ID, Resolution: resolution,
		BuyerEmail: e.BuyerEmail, SellerEmail: e.SellerEmail, PartnerID: e.PartnerID,
	}, idField, after...)
	meta := map[string]string{"status": statusResolving, "resolution": resolution}
	if sellerAmount != nil {
		meta["sellerAmount"] = strconv.FormatInt(*sellerAmount, 10)
	}
	p.step("audit", auditEvent(e, "resolve_requested", at, meta), idField)
	if money != "" {
		p.onFailure("failure-audit", failureAudit(e, flowResolve, "resolve_failed", money, at))
	}
	return p
}

// moneyStepOf is the name of a resolution's money step ("" for an unknown
// resolution, which the notify job's check names).
func moneyStepOf(resolution string) string {
	switch resolution {
	case payloads.ResolutionReleaseToSeller, payloads.ResolutionSplit:
		return "capture"
	case payloads.ResolutionRefundToBuyer:
		return "refund"
	}
	return ""
}
