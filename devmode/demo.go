package devmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// DemoEvents returns the jobs of the n-th sample escrow event: a release,
// refund, dispute, payment or resolution with its e-mails, Stripe call,
// partner webhook and audit entry. Three events in ten carry a demo failure
// marker, so retries and dead letters show up.
func DemoEvents(n int, now time.Time) ([]*tasks.Task, error) {
	tx := fmt.Sprintf("esc-%04d", n)
	pi := fmt.Sprintf("pi_demo%04d", n)
	partner := "partner-acme"
	switch n % 10 { // n%5 picks the event kind below; these land on kinds that use them
	case 5: // a release whose capture keeps failing: three retries, then a dead letter
		pi = fmt.Sprintf("pi_%s%04d", FailTransient, n)
	case 6: // a refund that is declined: a dead letter after one attempt
		pi = fmt.Sprintf("pi_%s%04d", FailPermanent, n)
	case 7: // a dispute whose partner webhook keeps failing
		partner = "partner-" + FailTransient
	}
	at := now.UTC().Format(time.RFC3339)
	buyer, seller := fmt.Sprintf("buyer%d@example.com", n), fmt.Sprintf("seller%d@example.com", n)
	audit := payloads.AuditLogCreated{EventID: tx + "-audit", Actor: "demo", Action: "escrow.updated", TransactionID: tx, OccurredAt: at}
	var event []payloads.Payload
	switch n % 5 {
	case 0: // released
		event = []payloads.Payload{
			payloads.StripeCapturePayment{TransactionID: tx, PaymentIntentID: pi},
			payloads.SendReleaseEmail{TransactionID: tx, RecipientEmail: seller, Amount: 12500, Currency: "USD"},
			statusWebhook(tx, partner, payloads.StatusFunded, payloads.StatusReleased, at),
		}
	case 1: // refunded
		event = []payloads.Payload{
			payloads.StripeRefundPayment{TransactionID: tx, PaymentIntentID: pi, Reason: payloads.RefundRequestedByCustomer},
			payloads.SendRefundEmail{TransactionID: tx, RecipientEmail: buyer, Amount: 4200, Currency: "EUR"},
			statusWebhook(tx, partner, payloads.StatusFunded, payloads.StatusRefunded, at),
		}
	case 2: // disputed
		event = []payloads.Payload{
			payloads.SendDisputeEmail{TransactionID: tx, DisputeID: "dsp-" + tx, RecipientEmail: seller, Reason: "Item not received"},
			statusWebhook(tx, partner, payloads.StatusFunded, payloads.StatusDisputed, at),
		}
	case 3: // paid
		event = []payloads.Payload{
			payloads.SendPaymentConfirmedEmail{TransactionID: tx, PaymentIntentID: pi, RecipientEmail: buyer, Amount: 9900, Currency: "USD"},
			statusWebhook(tx, partner, payloads.StatusPending, payloads.StatusFunded, at),
		}
	case 4: // dispute resolved
		event = []payloads.Payload{
			payloads.NotifyDisputeResolved{DisputeID: "dsp-" + tx, TransactionID: tx,
				Resolution: payloads.ResolutionSplit, BuyerEmail: buyer, SellerEmail: seller, PartnerID: partner},
		}
	}
	event = append(event, audit)
	out := make([]*tasks.Task, 0, len(event))
	for _, p := range event {
		t, err := tasks.New(p)
		if err != nil {
			return nil, fmt.Errorf("demo event %d: %w", n, err)
		}
		out = append(out, t)
	}
	return out, nil
}

func statusWebhook(tx, partner, from, to, at string) payloads.WebhookEscrowStatusChanged {
	return payloads.WebhookEscrowStatusChanged{
		EventID: tx + "-" + to, PartnerID: partner, TransactionID: tx, PreviousStatus: from, Status: to, OccurredAt: at}
}

// Enqueuer is what the demo enqueues through (tasks.Client).
type Enqueuer interface {
	Enqueue(ctx context.Context, t *tasks.Task) (string, error)
}

// RunDemo enqueues one sample escrow event every interval until ctx is done.
func RunDemo(ctx context.Context, c Enqueuer, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; ; n++ {
		ts, err := DemoEvents(n, time.Now())
		if err != nil {
			log.Error("demo", "error", err)
			return
		}
		for _, task := range ts {
			if _, err := c.Enqueue(ctx, task); err != nil && !errors.Is(err, tasks.ErrDuplicate) && ctx.Err() == nil {
				log.Warn("demo enqueue failed", "task_id", task.ID, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
