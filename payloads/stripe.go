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
	AmountToCapture int64  `json:"amountToCapture,omitempty" validate:"gte=0,lte=100000000000"`
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
type StripeRefundPayment struct {
	TransactionID   string `json:"transactionId"    validate:"required,escrowid"`
	PaymentIntentID string `json:"paymentIntentId"  validate:"required,paymentintent"`
	Amount          int64  `json:"amount,omitempty" validate:"gte=0,lte=100000000000"`
	Reason          string `json:"reason,omitempty" validate:"omitempty,oneof=duplicate fraudulent requested_by_customer"`
}

// TaskType is the asynq task type. It never changes after a deploy.
func (StripeRefundPayment) TaskType() string { return "stripe_refund_payment" }

// DedupeKey is refund-<paymentIntentId>-<amount or "full">.
func (p StripeRefundPayment) DedupeKey() string {
	amount := "full"
	if p.Amount > 0 {
		amount = strconv.FormatInt(p.Amount, 10)
	}
	return "refund-" + p.PaymentIntentID + "-" + amount
}

// Queue is the queue the task is processed from.
func (StripeRefundPayment) Queue() string { return QueueCritical }

// Timeout bounds one processing attempt.
func (StripeRefundPayment) Timeout() time.Duration { return stripeTimeout }
