package handlers

import (
	"context"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// Payment captures and refunds through Payments, keyed by the job ID (the
// adapter derives its idempotency key from it), and stores the charge or
// refund as the job's result.
type Payment struct{ payments Payments }

// NewPayment returns the payment handlers.
func NewPayment(p Payments) *Payment { return &Payment{payments: p} }

// routes are the job types the payment handlers serve.
func (s *Payment) routes() []route { return []route{handle(s.Capture), handle(s.Refund)} }

// Capture handles stripe_capture_payment.
func (s *Payment) Capture(ctx context.Context, p payloads.StripeCapturePayment) error {
	res, err := s.payments.Capture(ctx, Capture{
		JobID: jobID(ctx), TransactionID: p.TransactionID, PaymentIntentID: p.PaymentIntentID, Amount: p.AmountToCapture,
	})
	return done(ctx, res, err)
}

// Refund handles stripe_refund_payment.
func (s *Payment) Refund(ctx context.Context, p payloads.StripeRefundPayment) error {
	res, err := s.payments.Refund(ctx, Refund{
		JobID: jobID(ctx), TransactionID: p.TransactionID, PaymentIntentID: p.PaymentIntentID, Amount: p.Amount, RefundID: p.RefundID, Reason: p.Reason,
	})
	return done(ctx, res, err)
}

// done stores res as the job's result when the call succeeded. The
// adapter's error already names the operation and PaymentIntent.
func done(ctx context.Context, res PaymentResult, err error) error {
	if err != nil {
		return err
	}
	writeResult(ctx, res)
	return nil
}
