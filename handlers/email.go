package handlers

import (
	"context"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// Email sends the four customer e-mails through a Mailer.
type Email struct{ mailer Mailer }

// NewEmail returns the e-mail handlers.
func NewEmail(m Mailer) *Email { return &Email{mailer: m} }

// routes are the job types the e-mail handlers serve.
func (e *Email) routes() []route {
	return []route{handle(e.Release), handle(e.Refund), handle(e.Dispute), handle(e.PaymentConfirmed)}
}

func (e *Email) send(ctx context.Context, to string, p payloads.Payload) error {
	return e.mailer.SendMail(ctx, Mail{JobID: jobID(ctx), To: to, Data: p})
}

// Release handles send_release_email.
func (e *Email) Release(ctx context.Context, p payloads.SendReleaseEmail) error {
	return e.send(ctx, p.RecipientEmail, p)
}

// Refund handles send_refund_email.
func (e *Email) Refund(ctx context.Context, p payloads.SendRefundEmail) error {
	return e.send(ctx, p.RecipientEmail, p)
}

// Dispute handles send_dispute_email.
func (e *Email) Dispute(ctx context.Context, p payloads.SendDisputeEmail) error {
	return e.send(ctx, p.RecipientEmail, p)
}

// PaymentConfirmed handles send_payment_confirmed_email.
func (e *Email) PaymentConfirmed(ctx context.Context, p payloads.SendPaymentConfirmedEmail) error {
	return e.send(ctx, p.RecipientEmail, p)
}
