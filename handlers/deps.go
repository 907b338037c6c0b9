package handlers

import (
	"context"

	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Adapters report failures with errors the worker understands:
//   - wrap asynq.SkipRetry for a permanent failure (archived at once);
//   - wrap a *retry.AfterError (retry.After) when the peer asked for a longer pause;
//   - anything else is transient and retried on the 2 s / 4 s / 8 s schedule.

// Mail is one customer e-mail to render and deliver.
type Mail struct {
	// JobID is the job ID. It is stable across attempts; the SMTP
	// Message-ID and the Resend Idempotency-Key derive from it.
	JobID string
	// To is the recipient address. Never log it unmasked.
	To string
	// Data is the payload: one of payloads.SendReleaseEmail,
	// SendRefundEmail, SendDisputeEmail or SendPaymentConfirmedEmail.
	// The mailer picks the template from its type.
	Data payloads.Payload
}

// Mailer renders and delivers customer e-mails.
type Mailer interface {
	SendMail(ctx context.Context, m Mail) error
}

// Capture asks the payment provider to capture a PaymentIntent.
type Capture struct {
	// JobID is the job ID, identical on every attempt; the provider's
	// idempotency key derives from it.
	JobID           string
	TransactionID   string
	PaymentIntentID string
	// Amount in minor units; 0 captures the full authorised amount.
	Amount int64
}

// Refund asks the payment provider to refund a PaymentIntent.
type Refund struct {
	// JobID is the job ID, identical on every attempt; the provider's
	// idempotency key derives from it.
	JobID           string
	TransactionID   string
	PaymentIntentID string
	// Amount in minor units; 0 refunds what remains.
	Amount int64
	// RefundID is the caller's reference of a partial refund (required
	// when Amount is set, optional for a full one). The provider stores it
	// on the refund; a refund carrying it is this refund, already done.
	RefundID string
	// Reason is empty or one of Stripe's refund reasons.
	Reason string
}

// PaymentResult is what the provider did.
type PaymentResult struct {
	// ID is the charge (capture) or refund ID.
	ID string `json:"id"`
	// Status is the provider's status of the object.
	Status string `json:"status"`
	// AlreadyDone is true when the effect had happened before this attempt
	// (found by reading state), so nothing new was charged or refunded.
	AlreadyDone bool `json:"alreadyDone,omitempty"`
}

// Payments captures and refunds payments. Both calls must be safe to repeat
// with the same JobID, also after the provider forgot its idempotency key.
type Payments interface {
	Capture(ctx context.Context, c Capture) (PaymentResult, error)
	Refund(ctx context.Context, r Refund) (PaymentResult, error)
}

// Sender delivers signed webhooks to partners.
type Sender interface {
	Send(ctx context.Context, d partner.Delivery) error
}

// AuditSink stores audit events. Writing the same EventID twice stores it once.
type AuditSink interface {
	WriteAudit(ctx context.Context, e payloads.AuditLogCreated) error
}

// Enqueuer enqueues follow-up jobs (the dispute fan-out). tasks.Client is one.
type Enqueuer interface {
	Enqueue(ctx context.Context, t *tasks.Task) (string, error)
}

// The production adapter of Sender is package webhook's.
var _ Sender = (*partner.Sender)(nil)
