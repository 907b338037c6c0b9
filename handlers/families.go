package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// Email sends the four customer e-mails through a Mailer.
type Email struct{ mailer Mailer }

// NewEmail returns the e-mail handlers.
func NewEmail(m Mailer) *Email { return &Email{mailer: m} }

func (e *Email) send(ctx context.Context, to string, p payloads.Payload) error {
	return e.mailer.SendMail(ctx, Mail{ID: jobID(ctx), To: to, Data: p})
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

// Stripe captures and refunds through Payments, with an idempotency key
// derived from the job ID, and stores the charge or refund as the result.
type Stripe struct{ payments Payments }

// NewStripe returns the Stripe handlers.
func NewStripe(p Payments) *Stripe { return &Stripe{payments: p} }

// Capture handles stripe_capture_payment.
func (s *Stripe) Capture(ctx context.Context, p payloads.StripeCapturePayment) error {
	res, err := s.payments.Capture(ctx, Capture{
		IdempotencyKey: jobID(ctx), TransactionID: p.TransactionID, PaymentIntentID: p.PaymentIntentID, Amount: p.AmountToCapture,
	})
	if err != nil {
		return err // the adapter's error names the operation and PaymentIntent
	}
	writeResult(ctx, res)
	return nil
}

// Refund handles stripe_refund_payment.
func (s *Stripe) Refund(ctx context.Context, p payloads.StripeRefundPayment) error {
	res, err := s.payments.Refund(ctx, Refund{
		IdempotencyKey: jobID(ctx), TransactionID: p.TransactionID, PaymentIntentID: p.PaymentIntentID, Amount: p.Amount, RefundID: p.RefundID, Reason: p.Reason,
	})
	if err != nil {
		return err // the adapter's error names the operation and PaymentIntent
	}
	writeResult(ctx, res)
	return nil
}

// EventEscrowStatusChanged is the webhook event type partners receive.
const EventEscrowStatusChanged = "escrow.status_changed"

// WebhookBody is the JSON a partner receives, in the Standard Webhooks
// shape {type, timestamp, data}.
type WebhookBody struct {
	Type      string            `json:"type"`
	Timestamp string            `json:"timestamp"`
	Data      WebhookStatusData `json:"data"`
}

// WebhookStatusData is the data of an escrow.status_changed event.
type WebhookStatusData struct {
	EventID        string `json:"eventId"`
	TransactionID  string `json:"transactionId"`
	PreviousStatus string `json:"previousStatus"`
	Status         string `json:"status"`
}

// Webhook delivers signed partner webhooks through a Sender.
type Webhook struct{ sender Sender }

// NewWebhook returns the webhook handler.
func NewWebhook(s Sender) *Webhook { return &Webhook{sender: s} }

// StatusChanged handles webhook_escrow_status_changed. The webhook-id is the
// event ID, so every attempt carries the same one.
func (w *Webhook) StatusChanged(ctx context.Context, p payloads.WebhookEscrowStatusChanged) error {
	body, err := json.Marshal(WebhookBody{
		Type: EventEscrowStatusChanged, Timestamp: p.OccurredAt,
		Data: WebhookStatusData{EventID: p.EventID, TransactionID: p.TransactionID, PreviousStatus: p.PreviousStatus, Status: p.Status},
	})
	if err != nil {
		return fmt.Errorf("webhook %s: encode: %w", p.EventID, err)
	}
	return w.sender.Send(ctx, Delivery{ID: p.EventID, PartnerID: p.PartnerID, Body: body})
}

// Audit stores audit events through an AuditSink.
type Audit struct{ sink AuditSink }

// NewAudit returns the audit handler.
func NewAudit(s AuditSink) *Audit { return &Audit{sink: s} }

// Created handles audit_log_created.
func (a *Audit) Created(ctx context.Context, p payloads.AuditLogCreated) error {
	if err := a.sink.WriteAudit(ctx, p); err != nil {
		return fmt.Errorf("audit %s: %w", p.EventID, err)
	}
	return nil
}

// Notify fans a resolved dispute out into typed jobs, each with its own
// dedupe key, so running it again creates nothing twice.
type Notify struct {
	enq Enqueuer
	now func() time.Time
}

// NewNotify returns the dispute fan-out handler.
func NewNotify(e Enqueuer, now func() time.Time) *Notify {
	if now == nil {
		now = time.Now
	}
	return &Notify{enq: e, now: now}
}

var resolutionText = map[string]string{
	payloads.ResolutionReleaseToSeller: "The dispute was resolved: the funds are released to the seller.",
	payloads.ResolutionRefundToBuyer:   "The dispute was resolved: the funds are refunded to the buyer.",
	payloads.ResolutionSplit:           "The dispute was resolved: the funds are split between buyer and seller.",
}

// FanOut returns the jobs a resolved dispute creates: a dispute e-mail to
// buyer and seller and, when the escrow has a partner, its webhook.
func (n *Notify) FanOut(p payloads.NotifyDisputeResolved) ([]*tasks.Task, error) {
	var out []*tasks.Task
	for _, to := range []string{p.BuyerEmail, p.SellerEmail} {
		t, err := tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{
			TransactionID: p.TransactionID, DisputeID: p.DisputeID, RecipientEmail: to, Reason: resolutionText[p.Resolution],
		}, tasks.DedupeKey("dispute-"+p.DisputeID+"-resolved-"+payloads.RecipientHash(to)))
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if p.PartnerID != "" {
		t, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
			EventID: disputeResolvedEventID(p.DisputeID), PartnerID: p.PartnerID, TransactionID: p.TransactionID,
			PreviousStatus: payloads.StatusDisputed, Status: payloads.StatusResolved,
			OccurredAt: n.now().UTC().Format(time.RFC3339),
		})
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Resolved handles notify_dispute_resolved. A child job that fails
// validation is a permanent failure (asynq.SkipRetry): a retry would build
// the same invalid job again.
func (n *Notify) Resolved(ctx context.Context, p payloads.NotifyDisputeResolved) error {
	ts, err := n.FanOut(p)
	if err != nil {
		var ve *payloads.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("notify %s: %w: %w", p.DisputeID, err, asynq.SkipRetry)
		}
		return fmt.Errorf("notify %s: %w", p.DisputeID, err)
	}
	for _, t := range ts {
		if _, err := n.enq.Enqueue(ctx, t); err != nil && !errors.Is(err, tasks.ErrDuplicate) {
			return fmt.Errorf("notify %s: %w", p.DisputeID, err)
		}
	}
	return nil
}
