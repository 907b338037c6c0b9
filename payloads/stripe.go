package payloads

import (
	"strconv"
	"time"
)

// StripeCapturePayment captures an authorised PaymentIntent when an escrow is
// released. AmountToCapture 0 (omitted) captures the full authorised amount.
type StripeCapturePayment struct {
	TransactionID   string `json:"transactionId"             validate:"required,escrowid"`
	PaymentIntentID string `json:"paymentIntentId"           validate:"required,paymentintent"`
	AmountToCapture int64  `json:"amountToCapture,omitempty" validate:"amountorall"`
}

// TaskType is the asynq task type. It never changes after a deploy.
func (StripeCapturePayment) TaskType() string { return "stripe_capture_payment" }

// DedupeKey is capture-<paymentIntentId>.
func (p StripeCapturePayment) DedupeKey() string { return "capture-" + p.PaymentIntentID }

// Queue is the queue the task is processed from.
func (StripeCapturePayment) Queue() string { return QueueCritical }

// Timeout bounds one processing attempt.
func (StripeCapturePayment) Timeout() time.Duration { return stripeTimeout }

// Refund reasons Stripe accepts.
const (
	RefundDuplicate           = "duplicate"
	RefundFraudulent          = "fraudulent"
	RefundRequestedByCustomer = "requested_by_customer"
)

// StripeRefundPayment refunds a PaymentIntent. Amount 0 (omitted) refunds
// whatever remains of it.
//
// A partial refund (Amount set) requires RefundID, the caller's reference
// for this refund (1-64 letters, digits, '-', '_', '.'): it goes into the
// dedupe key, the Stripe idempotency key and the refund's metadata, so two
// legitimate refunds of the same amount on one PaymentIntent are two
// refunds, and a replay of one of them is recognised by its reference.
type StripeRefundPayment struct {
	TransactionID   string `json:"transactionId"      validate:"required,escrowid"`
	PaymentIntentID string `json:"paymentIntentId"    validate:"required,paymentintent"`
	Amount          int64  `json:"amount,omitempty"   validate:"amountorall"`
	RefundID        string `json:"refundId,omitempty" validate:"required_unless=Amount 0,omitempty,escrowid"`
	Reason          string `json:"reason,omitempty"   validate:"omitempty,oneof=duplicate fraudulent requested_by_customer"`
}

// TaskType is the asynq task type. It never changes after a deploy.
func (StripeRefundPayment) TaskType() string { return "stripe_refund_payment" }

// DedupeKey is refund-<paymentIntentId>-full for a full refund and
// refund-<paymentIntentId>-<amount>-<refundId> for a partial one.
func (p StripeRefundPayment) DedupeKey() string {
	if p.Amount <= 0 {
		return "refund-" + p.PaymentIntentID + "-full"
	}
	return "refund-" + p.PaymentIntentID + "-" + strconv.FormatInt(p.Amount, 10) + "-" + p.RefundID
}

// Queue is the queue the task is processed from.
func (StripeRefundPayment) Queue() string { return QueueCritical }

// Timeout bounds one processing attempt.
func (StripeRefundPayment) Timeout() time.Duration { return stripeTimeout }
