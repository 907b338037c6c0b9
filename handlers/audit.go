package handlers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
)

// Audit stores audit events through an AuditSink.
type Audit struct{ sink AuditSink }

// NewAudit returns the audit handler.
func NewAudit(s AuditSink) *Audit { return &Audit{sink: s} }

// routes are the job types the audit handler serves.
func (a *Audit) routes() []route { return []route{handle(a.Created)} }

// Created handles audit_log_created. The event of a flow's on-failure step
// also says why the flow failed and what had happened by then: its
// metadata gains "failedStep", "failure" (flows.FailureOf) and
// "completedSteps" (flows.CompletedStepsOf: did the money step run?),
// unless it has them or would grow past payloads.MaxMetadataBytes.
func (a *Audit) Created(ctx context.Context, p payloads.AuditLogCreated) error {
	if t, ok := ctx.Value(taskKey{}).(*asynq.Task); ok {
		if step, reason, ok := flows.FailureOf(t.Headers()); ok {
			completed, _ := flows.CompletedStepsOf(t.Headers())
			p.Metadata = withFailure(p.Metadata, step, reason, completed)
		}
	}
	if err := a.sink.WriteAudit(ctx, p); err != nil {
		return fmt.Errorf("audit %s: %w", p.EventID, err)
	}
	return nil
}

// withFailure is meta (a JSON object, or empty) with the failed step, its
// error and the completed steps (nil: not known, left out) added, or meta
// as it is when that does not fit.
func withFailure(meta json.RawMessage, step, reason string, completed []string) json.RawMessage {
	m := map[string]json.RawMessage{}
	if len(meta) > 0 && json.Unmarshal(meta, &m) != nil {
		return meta
	}
	if m == nil { // "null"
		m = map[string]json.RawMessage{}
	}
	add := map[string]any{"failedStep": step, "failure": reason}
	if completed != nil {
		add["completedSteps"] = completed
	}
	for k, v := range add {
		if _, taken := m[k]; !taken {
			m[k], _ = json.Marshal(v)
		}
	}
	b, err := json.Marshal(m)
	if err != nil || len(b) > payloads.MaxMetadataBytes {
		return meta
	}
	return b
}
