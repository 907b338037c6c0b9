package handlers

import (
	"context"
	"fmt"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// Audit stores audit events through an AuditSink.
type Audit struct{ sink AuditSink }

// NewAudit returns the audit handler.
func NewAudit(s AuditSink) *Audit { return &Audit{sink: s} }

// routes are the job types the audit handler serves.
func (a *Audit) routes() []route { return []route{handle(a.Created)} }

// Created handles audit_log_created.
func (a *Audit) Created(ctx context.Context, p payloads.AuditLogCreated) error {
	if err := a.sink.WriteAudit(ctx, p); err != nil {
		return fmt.Errorf("audit %s: %w", p.EventID, err)
	}
	return nil
}
