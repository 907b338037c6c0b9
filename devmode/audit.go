package devmode

import (
	"context"
	"log/slog"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
)

// Audit is the -dev audit sink: it logs each event it is given and stores
// nothing, so there is nothing to deduplicate.
type Audit struct {
	log *slog.Logger
}

var _ handlers.AuditSink = (*Audit)(nil)

// NewAudit returns a sink that writes events to log.
func NewAudit(log *slog.Logger) *Audit { return &Audit{log: log} }

// WriteAudit logs e at Info level. Metadata is logged with e-mail
// addresses masked.
func (l *Audit) WriteAudit(ctx context.Context, e payloads.AuditLogCreated) error {
	attrs := []slog.Attr{
		slog.String("eventId", e.EventID),
		slog.String("actor", e.Actor),
		slog.String("action", e.Action),
		slog.String("occurredAt", e.OccurredAt),
	}
	if e.TransactionID != "" {
		attrs = append(attrs, slog.String("transactionId", e.TransactionID))
	}
	if len(e.Metadata) > 0 {
		attrs = append(attrs, slog.String("metadata", string(payloads.MaskedJSON(e.Metadata))))
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "audit event (dev: not stored)", attrs...)
	return nil
}
