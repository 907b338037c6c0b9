package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// AuditSink stores audit events in audit_events. It implements
// handlers.AuditSink.
type AuditSink struct {
	db *DB
}

// AuditSink returns the audit sink of db. Migrate must have run.
func (db *DB) AuditSink() *AuditSink { return &AuditSink{db: db} }

// WriteAudit inserts e unless a row with its eventId exists (insert or
// ignore). An empty transactionId or metadata is stored as NULL. An event
// the database refuses, or whose occurredAt is not RFC 3339, is a permanent
// failure (asynq.SkipRetry).
func (s *AuditSink) WriteAudit(ctx context.Context, e payloads.AuditLogCreated) error {
	if e.EventID == "" {
		return fmt.Errorf("postgres: audit event without eventId: %w", asynq.SkipRetry)
	}
	at, err := time.Parse(time.RFC3339, e.OccurredAt)
	if err != nil {
		return fmt.Errorf("postgres: audit event %s: occurredAt: %w: %w", e.EventID, err, asynq.SkipRetry)
	}
	var txID *string
	if e.TransactionID != "" {
		txID = &e.TransactionID
	}
	var meta *string
	if len(e.Metadata) > 0 {
		m := string(e.Metadata)
		meta = &m
	}
	_, err = s.db.pool.Exec(ctx, `
		INSERT INTO audit_events (event_id, actor, action, transaction_id, occurred_at, metadata)
		VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)
		ON CONFLICT (event_id) DO NOTHING`,
		e.EventID, e.Actor, e.Action, txID, at, meta)
	if err != nil {
		return classify(err, "postgres: insert audit event %s", e.EventID)
	}
	return nil
}
