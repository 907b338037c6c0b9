package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

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

// routes are the job types the dispute fan-out serves.
func (n *Notify) routes() []route { return []route{handle(n.Resolved)} }

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
