package devmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// demoStep is one step of a demo event's flow.
type demoStep struct {
	name      string
	job       payloads.Payload
	after     []string
	onFailure bool
}

// demoEvent is the n-th sample escrow event as the flow of its transition
// (named after it, keyed by the escrow ID): a release, refund, dispute,
// payment or resolution with its Stripe call first and the e-mails and
// partner webhook that tell of it after it, and an audit entry. Three
// events in ten carry a demo failure marker, so retries, dead letters and
// failed flows show up.
func demoEvent(n int, now time.Time) (name, key string, steps []demoStep) {
	tx := fmt.Sprintf("esc-%04d", n)
	pi := fmt.Sprintf("pi_demo%04d", n)
	partner := DemoPartners[0]
	switch n % 10 { // n%5 picks the event kind below; these land on kinds that use them
	case 5: // a release whose capture keeps failing: three retries, then a dead letter; the flow fails, its e-mail and webhook are blocked
		pi = fmt.Sprintf("pi_%s%04d", FailTransient, n)
	case 6: // a refund that is declined: a dead letter after one attempt; the flow fails
		pi = fmt.Sprintf("pi_%s%04d", FailPermanent, n)
	case 7: // a dispute whose partner webhook keeps failing
		partner = DemoPartners[1]
	}
	at := now.UTC().Format(time.RFC3339)
	buyer, seller := fmt.Sprintf("buyer%d@example.com", n), fmt.Sprintf("seller%d@example.com", n)
	audit := demoStep{name: "audit", job: payloads.AuditLogCreated{EventID: tx + "-audit", Actor: "demo", Action: "escrow.updated", TransactionID: tx, OccurredAt: at}}
	failed := func(action string) demoStep {
		return demoStep{name: "failure-audit", onFailure: true, job: payloads.AuditLogCreated{
			EventID: tx + "-failed", Actor: "demo", Action: "escrow." + action, TransactionID: tx, OccurredAt: at}}
	}
	switch n % 5 {
	case 0:
		return "release", tx, []demoStep{
			{name: "capture", job: payloads.StripeCapturePayment{TransactionID: tx, PaymentIntentID: pi}},
			{name: "seller-email", job: payloads.SendReleaseEmail{TransactionID: tx, RecipientEmail: seller, Amount: 12500, Currency: "USD"}, after: []string{"capture"}},
			{name: "partner-webhook", job: statusWebhook(tx, partner, payloads.StatusFunded, payloads.StatusReleased, at), after: []string{"capture"}},
			audit, failed("release_failed"),
		}
	case 1:
		return "refund", tx, []demoStep{
			{name: "refund", job: payloads.StripeRefundPayment{TransactionID: tx, PaymentIntentID: pi, Reason: payloads.RefundRequestedByCustomer}},
			{name: "buyer-email", job: payloads.SendRefundEmail{TransactionID: tx, RecipientEmail: buyer, Amount: 4200, Currency: "EUR"}, after: []string{"refund"}},
			{name: "partner-webhook", job: statusWebhook(tx, partner, payloads.StatusFunded, payloads.StatusRefunded, at), after: []string{"refund"}},
			audit, failed("refund_failed"),
		}
	case 2:
		return "dispute", tx, []demoStep{
			{name: "seller-email", job: payloads.SendDisputeEmail{TransactionID: tx, DisputeID: "dsp-" + tx, RecipientEmail: seller, Reason: "Item not received"}},
			{name: "partner-webhook", job: statusWebhook(tx, partner, payloads.StatusFunded, payloads.StatusDisputed, at)},
			audit,
		}
	case 3:
		return "fund", tx, []demoStep{
			{name: "buyer-email", job: payloads.SendPaymentConfirmedEmail{TransactionID: tx, PaymentIntentID: pi, RecipientEmail: buyer, Amount: 9900, Currency: "USD"}},
			{name: "partner-webhook", job: statusWebhook(tx, partner, payloads.StatusPending, payloads.StatusFunded, at)},
			audit,
		}
	default: // 4: a dispute resolved by a split: the seller's share captured, then the parties told
		return "resolve", tx, []demoStep{
			{name: "capture", job: payloads.StripeCapturePayment{TransactionID: tx, PaymentIntentID: pi, AmountToCapture: 5000}},
			{name: "notify", job: payloads.NotifyDisputeResolved{DisputeID: "dsp-" + tx, TransactionID: tx,
				Resolution: payloads.ResolutionSplit, BuyerEmail: buyer, SellerEmail: seller, PartnerID: partner}, after: []string{"capture"}},
			audit, failed("resolve_failed"),
		}
	}
}

// DemoEvents returns the jobs of the n-th sample escrow event (the steps of
// DemoFlow, on-failure steps included).
func DemoEvents(n int, now time.Time) ([]*tasks.Task, error) {
	_, _, steps := demoEvent(n, now)
	out := make([]*tasks.Task, 0, len(steps))
	for _, s := range steps {
		t, err := tasks.New(s.job)
		if err != nil {
			return nil, fmt.Errorf("demo event %d: %w", n, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// DemoFlow is the n-th sample escrow event as a flow: "release:esc-0005"
// and so on.
func DemoFlow(n int, now time.Time) (*flows.Flow, error) {
	name, key, steps := demoEvent(n, now)
	b := flows.New(name, key)
	for _, s := range steps {
		if s.onFailure {
			b.OnFailure(s.name, s.job)
			continue
		}
		var opts []flows.StepOption
		if len(s.after) > 0 {
			opts = append(opts, flows.After(s.after...))
		}
		b.Step(s.name, s.job, opts...)
	}
	f, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("demo event %d: %w", n, err)
	}
	return f, nil
}

func statusWebhook(tx, partner, from, to, at string) payloads.WebhookEscrowStatusChanged {
	return payloads.WebhookEscrowStatusChanged{
		EventID: tx + "-" + to, PartnerID: partner, TransactionID: tx, PreviousStatus: from, Status: to, OccurredAt: at}
}

// RunDemo starts one sample escrow flow (DemoFlow) every interval until ctx
// is done. The worker must run the flows (flows.Store's Middleware and
// worker.Config.Flows).
func RunDemo(ctx context.Context, c *tasks.Client, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; ; n++ {
		f, err := DemoFlow(n, time.Now())
		if err != nil {
			log.Error("demo", "error", err)
			return
		}
		if _, err := flows.Start(ctx, c, f); err != nil && !errors.Is(err, flows.ErrDuplicate) && ctx.Err() == nil {
			log.Warn("demo flow start failed", "flow_id", f.ID(), "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
