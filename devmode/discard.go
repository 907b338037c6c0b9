package devmode

import (
	"context"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Discard is every adapter at once, doing nothing and logging nothing:
// what a benchmark or load run measures is then the job machinery (decode,
// validate, log, asynq, Redis), not a peer.
type Discard struct{}

var (
	_ handlers.Mailer    = Discard{}
	_ handlers.Payments  = Discard{}
	_ handlers.Sender    = Discard{}
	_ handlers.AuditSink = Discard{}
	_ handlers.Enqueuer  = Discard{}
	_ interface {
		Record(context.Context, deadletter.Entry) (bool, error)
	} = Discard{} // worker.Recorder
)

// SendMail does nothing.
func (Discard) SendMail(context.Context, handlers.Mail) error { return nil }

// Capture reports a capture that succeeded.
func (Discard) Capture(context.Context, handlers.Capture) (handlers.PaymentResult, error) {
	return handlers.PaymentResult{ID: "ch_discard", Status: "succeeded"}, nil
}

// Refund reports a refund that succeeded.
func (Discard) Refund(context.Context, handlers.Refund) (handlers.PaymentResult, error) {
	return handlers.PaymentResult{ID: "re_discard", Status: "succeeded"}, nil
}

// Send does nothing.
func (Discard) Send(context.Context, partner.Delivery) error { return nil }

// WriteAudit does nothing.
func (Discard) WriteAudit(context.Context, payloads.AuditLogCreated) error { return nil }

// Enqueue returns the job's ID and enqueues nothing.
func (Discard) Enqueue(_ context.Context, t *tasks.Task) (string, error) { return t.ID, nil }

// Record records nothing and reports it as recorded.
func (Discard) Record(context.Context, deadletter.Entry) (bool, error) { return true, nil }
