package devmode

import (
	"context"
	"log/slog"

	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
)

// Mailer is the -dev mailer: it renders each mail and logs what it would
// send, with the recipient masked. It sends nothing.
type Mailer struct{ log *slog.Logger }

var _ handlers.Mailer = (*Mailer)(nil)

// NewMailer returns a mailer that logs to log; nil discards.
func NewMailer(log *slog.Logger) *Mailer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mailer{log: log}
}

// SendMail renders m (so template errors show in -dev too) and logs the job
// ID, task type, masked recipient and subject.
func (l *Mailer) SendMail(ctx context.Context, m handlers.Mail) error {
	msg, err := email.Render(m)
	if err != nil {
		return err
	}
	l.log.InfoContext(ctx, "email not sent (dev mode)",
		"task_id", m.JobID, "task_type", m.Data.TaskType(), "to", payloads.MaskEmail(m.To), "subject", msg.Subject)
	return nil
}
