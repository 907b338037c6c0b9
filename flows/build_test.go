package flows_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// release is the release flow of escrow esc (capture, then the seller's
// e-mail and the partner's webhook, an independent audit, an on-failure
// audit), built from the samples of the registry.
func release(esc string) *flows.Builder {
	capture := payloads.StripeCapturePayment{TransactionID: esc, PaymentIntentID: "pi_3Mtw" + strings.ReplaceAll(esc, "-", ""), AmountToCapture: 125000}
	mail := payloads.SendReleaseEmail{TransactionID: esc, RecipientEmail: "seller-" + esc + "@example.com", Amount: 125000, Currency: "USD"}
	hook := payloads.WebhookEscrowStatusChanged{EventID: "evt-" + esc + "-released", PartnerID: "partner-acme", TransactionID: esc,
		PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: "2026-11-29T10:00:00Z"}
	audit := payloads.AuditLogCreated{EventID: "evt-" + esc + "-audit", Actor: "user-1", Action: "escrow.released", TransactionID: esc, OccurredAt: "2026-11-29T10:00:00Z"}
	failAudit := payloads.AuditLogCreated{EventID: "evt-" + esc + "-release-failed", Actor: "system", Action: "escrow.release_failed", TransactionID: esc, OccurredAt: "2026-11-29T10:00:00Z"}
	return flows.New("release", esc).
		Step("capture", capture).
		Step("seller-email", mail, flows.After("capture")).
		Step("partner-webhook", hook, flows.After("capture")).
		Step("audit", audit).
		OnFailure("failure-audit", failAudit)
}

func audit(id string) payloads.AuditLogCreated {
	return payloads.AuditLogCreated{EventID: id, Actor: "user-1", Action: "escrow.released", OccurredAt: "2026-11-29T10:00:00Z"}
}

func TestBuildErrorsNameTheStepAndField(t *testing.T) {
	bad := audit("evt-bad")
	bad.EventID, bad.OccurredAt = "", "yesterday"
	cases := []struct {
		name      string
		b         *flows.Builder
		step      string
		field     string
		wantInErr []string
	}{
		{"cycle", flows.New("f", "k").Step("a", audit("e1"), flows.After("c")).Step("b", audit("e2"), flows.After("a")).Step("c", audit("e3"), flows.After("b")),
			"a", "after", []string{"cycle"}},
		{"unknown after", flows.New("f", "k").Step("a", audit("e1")).Step("b", audit("e2"), flows.After("nope")),
			"b", "after", []string{`unknown step "nope"`}},
		{"duplicate name", flows.New("f", "k").Step("a", audit("e1")).Step("a", audit("e2")),
			"a", "name", []string{"two steps"}},
		{"duplicate with on-failure", flows.New("f", "k").Step("a", audit("e1")).OnFailure("a", audit("e2")),
			"a", "name", []string{"two steps"}},
		{"after an on-failure step", flows.New("f", "k").Step("a", audit("e1"), flows.After("undo")).OnFailure("undo", audit("e2")),
			"a", "after", []string{"on-failure"}},
		{"on-failure with after", flows.New("f", "k").Step("a", audit("e1")).OnFailure("undo", audit("e2"), flows.After("a")),
			"undo", "after", []string{"on-failure"}},
		{"self", flows.New("f", "k").Step("a", audit("e1"), flows.After("a")),
			"a", "after", []string{"itself"}},
		{"invalid payload", flows.New("f", "k").Step("a", audit("e1")).Step("bad-audit", bad),
			"bad-audit", "eventId, occurredAt", []string{"eventId", "occurredAt"}},
		{"invalid dedupe key", flows.New("f", "k").Step("a", audit("e1"), flows.With(tasks.DedupeKey("no spaces"))),
			"a", "dedupeKey", []string{"dedupeKey"}},
		{"empty step name", flows.New("f", "k").Step("", audit("e1")),
			"", "name", []string{"a step has no name"}},
		{"empty flow name", flows.New("", "k").Step("a", audit("e1")),
			"", "name", []string{`flow ":k": name`}},
		{"empty key", flows.New("f", "").Step("a", audit("e1")),
			"", "key", []string{"key"}},
		{"no steps", flows.New("f", "k"),
			"", "steps", []string{"at least one step"}},
		{"same job twice", flows.New("f", "k").Step("a", audit("e1")).Step("b", audit("e1")),
			"b", "job", []string{"job ID audit_log_created:audit-e1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := c.b.Build()
			if err == nil {
				t.Fatalf("Build: got flow %s, want an error", f.ID())
			}
			var be *flows.BuildError
			if !errors.As(err, &be) {
				t.Fatalf("Build: got %T %v, want a *flows.BuildError", err, err)
			}
			if be.Step != c.step || be.Field != c.field {
				t.Errorf("got step %q field %q, want step %q field %q (%v)", be.Step, be.Field, c.step, c.field, err)
			}
			if !strings.Contains(err.Error(), "flow ") {
				t.Errorf("%q does not name the flow", err)
			}
			if c.step != "" && !strings.Contains(err.Error(), `step "`+c.step+`"`) {
				t.Errorf("%q does not name step %q", err, c.step)
			}
			for _, w := range c.wantInErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not contain %q", err, w)
				}
			}
			if c.name == "invalid payload" {
				var ve *payloads.ValidationError
				if !errors.As(err, &ve) || len(ve.Fields) != 2 {
					t.Errorf("errors.As *payloads.ValidationError: got %v, want its two fields", ve)
				}
			}
		})
	}
}

func TestBuildOrdersStepsAndSetsHeaders(t *testing.T) {
	f, err := release("esc-1").Build()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.ID(), "release:esc-1"; got != want {
		t.Errorf("ID: got %s, want %s", got, want)
	}
	if got := flows.ID("release", "esc-1"); got != f.ID() {
		t.Errorf("flows.ID: got %s", got)
	}
	if _, _, ok := flows.Of(map[string]string{}); ok {
		t.Error("Of of no headers: got ok")
	}
	if fl, st, ok := flows.Of(map[string]string{flows.HeaderFlow: "release:esc-1", flows.HeaderStep: "capture"}); !ok || fl != "release:esc-1" || st != "capture" {
		t.Errorf("Of: got %s %s %v", fl, st, ok)
	}
}
