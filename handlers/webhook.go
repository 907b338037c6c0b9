package handlers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/webhook"
)

// Webhook delivers signed partner webhooks through a Sender.
type Webhook struct{ sender Sender }

// NewWebhook returns the webhook handler.
func NewWebhook(s Sender) *Webhook { return &Webhook{sender: s} }

// routes are the job types the webhook handler serves.
func (w *Webhook) routes() []route { return []route{handle(w.StatusChanged)} }

// StatusChanged handles webhook_escrow_status_changed. The webhook-id is the
// event ID and the body's sequence the one Enqueue stored in the job, so
// every attempt and redelivery carries the same ones. The escrow's ID
// lets an "ordered" partner get its events in sequence.
func (w *Webhook) StatusChanged(ctx context.Context, p payloads.WebhookEscrowStatusChanged) error {
	body, err := json.Marshal(webhook.Body{
		Type: webhook.EventEscrowStatusChanged, Timestamp: p.OccurredAt,
		Data: webhook.StatusData{EventID: p.EventID, TransactionID: p.TransactionID, PreviousStatus: p.PreviousStatus, Status: p.Status, Sequence: p.Sequence},
	})
	if err != nil {
		return fmt.Errorf("webhook %s: encode: %w", p.EventID, err)
	}
	return w.sender.Send(ctx, partner.Delivery{ID: p.EventID, PartnerID: p.PartnerID, Body: body, TransactionID: p.TransactionID})
}
