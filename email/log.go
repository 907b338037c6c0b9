package email

import (
	"context"
	"log/slog"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
)

// Log is the -dev mailer: it renders each mail and logs what it would send,
// with the recipient masked. It sends nothing.
type Log struct{ log *slog.Logger }

var _ handlers.Mailer = (*Log)(nil)

// NewLog returns a mailer that logs to log; nil discards.
func NewLog(log *slog.Logger) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{log: log}
}

// SendMail renders m (so template errors show in -dev too) and logs the job
// ID, kind, masked recipient and subject.
func (l *Log) SendMail(ctx context.Context, m handlers.Mail) error {
	msg, err := Render(m)
	if err != nil {
		return err
	}
	l.log.InfoContext(ctx, "email not sent (dev mode)",
		"job", m.ID, "kind", m.Data.TaskType(), "to", payloads.MaskEmail(m.To), "subject", msg.Subject)
	return nil
}
