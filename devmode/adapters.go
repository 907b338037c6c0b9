package devmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/hibiken/asynq"
)

// Demo failure markers: the dev adapters fail on purpose for these, so
// retries and dead letters show up in the monitor.
const (
	// FailTransient in a PaymentIntent ID or partner ID fails every attempt
	// transiently: the job is retried three times, then archived.
	FailTransient = "flaky"
	// FailPermanent in a PaymentIntent ID or partner ID fails permanently:
	// the job is archived after one attempt.
	FailPermanent = "declined"
)

// DemoPartners are the partners the demo's webhooks go to: a healthy one
// and one whose deliveries keep failing.
var DemoPartners = []string{"partner-acme", "partner-" + FailTransient}

var errDemo = errors.New("demo failure")

func demoFailure(id string) error {
	switch {
	case strings.Contains(id, FailPermanent):
		return fmt.Errorf("%w: %s is marked %q: %w", errDemo, id, FailPermanent, asynq.SkipRetry)
	case strings.Contains(id, FailTransient):
		return fmt.Errorf("%w: %s is marked %q (transient)", errDemo, id, FailTransient)
	}
	return nil
}

// Payments logs the capture or refund it would make.
type Payments struct{ Log *slog.Logger }

// Capture logs c and pretends it succeeded (or fails for demo markers).
func (p Payments) Capture(ctx context.Context, c handlers.Capture) (handlers.PaymentResult, error) {
	if err := demoFailure(c.PaymentIntentID); err != nil {
		return handlers.PaymentResult{}, err
	}
	p.Log.InfoContext(ctx, "dev: would capture", "payment_intent", c.PaymentIntentID, "amount", c.Amount, "task_id", c.JobID)
	return handlers.PaymentResult{ID: "ch_dev_" + c.PaymentIntentID, Status: "succeeded"}, nil
}

// Refund logs r and pretends it succeeded (or fails for demo markers).
func (p Payments) Refund(ctx context.Context, r handlers.Refund) (handlers.PaymentResult, error) {
	if err := demoFailure(r.PaymentIntentID); err != nil {
		return handlers.PaymentResult{}, err
	}
	p.Log.InfoContext(ctx, "dev: would refund", "payment_intent", r.PaymentIntentID, "amount", r.Amount, "task_id", r.JobID)
	return handlers.PaymentResult{ID: "re_dev_" + r.PaymentIntentID, Status: "succeeded"}, nil
}

// Sender logs the webhook it would send.
type Sender struct{ Log *slog.Logger }

// Send logs d (or fails for demo markers).
func (s Sender) Send(ctx context.Context, d partner.Delivery) error {
	if err := demoFailure(d.PartnerID); err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "dev: would send webhook", "webhook_id", d.ID, "partner", d.PartnerID, "bytes", len(d.Body))
	return nil
}
