package handlers

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// The mux is built from the registry: a registered type without a handler,
// a handler of an unregistered type, or two handlers of one type stop the
// worker from starting.
func TestMuxRefusesARegistryItCannotServe(t *testing.T) {
	audit := handle(func(context.Context, payloads.AuditLogCreated) error { return nil })
	webhook := handle(func(context.Context, payloads.WebhookEscrowStatusChanged) error { return nil })
	auditType, err := tasks.Lookup("audit_log_created")
	if err != nil {
		t.Fatal(err)
	}
	webhookType, err := tasks.Lookup("webhook_escrow_status_changed")
	if err != nil {
		t.Fatal(err)
	}
	logging := Logging(slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		name   string
		routes []route
		types  []tasks.Type
		want   string // "" for no error
	}{
		{"one route per type", []route{audit, webhook}, []tasks.Type{auditType, webhookType}, ""},
		{"registered type without handler", []route{audit}, []tasks.Type{auditType, webhookType}, "no handler for job type webhook_escrow_status_changed"},
		{"handler of an unregistered type", []route{audit, webhook}, []tasks.Type{auditType}, "a handler for webhook_escrow_status_changed: unknown job type"},
		{"two handlers of one type", []route{audit, audit}, []tasks.Type{auditType}, "two handlers for audit_log_created"},
	} {
		mux, err := newMux(logging, tc.routes, tc.types)
		switch {
		case tc.want == "" && (err != nil || mux == nil):
			t.Errorf("%s: got %v, want a mux", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
		if tc.name == "handler of an unregistered type" && !errors.Is(err, tasks.ErrUnknownType) {
			t.Errorf("%s: got %v, want errors.Is tasks.ErrUnknownType", tc.name, err)
		}
	}
}
