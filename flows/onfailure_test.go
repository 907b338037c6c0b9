package flows_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
)

// The on-failure step's job carries the step that failed and its error,
// and the audit handler writes them into the event's metadata: the failure
// audit record says why.
func TestOnFailureStepSaysWhichStepFailedAndWhy(t *testing.T) {
	e := setup(t, nil)
	v, _ := failedRelease(t, e, "esc-why")
	ev, ok := e.adapters.Payload(step(t, v, "failure-audit").JobID).(payloads.AuditLogCreated)
	if !ok {
		t.Fatalf("failure-audit: got %T, want the audit event", e.adapters.Payload(step(t, v, "failure-audit").JobID))
	}
	var meta map[string]string
	if err := json.Unmarshal(ev.Metadata, &meta); err != nil {
		t.Fatalf("failure-audit metadata %s: %v", ev.Metadata, err)
	}
	if meta["failedStep"] != "capture" || !strings.Contains(meta["failure"], "charge_expired_for_capture") {
		t.Errorf("failure-audit metadata: got %v, want failedStep capture and the capture's error", meta)
	}
}

func TestFailureOf(t *testing.T) {
	for _, tc := range []struct {
		name         string
		headers      map[string]string
		step, reason string
		ok           bool
	}{
		{"an on-failure step's job", map[string]string{flows.HeaderFlow: "release:esc-1", flows.HeaderFailedStep: "capture", flows.HeaderFailure: "declined"}, "capture", "declined", true},
		{"a regular step's job", map[string]string{flows.HeaderFlow: "release:esc-1", flows.HeaderStep: "capture"}, "", "", false},
		{"no headers", nil, "", "", false},
	} {
		step, reason, ok := flows.FailureOf(tc.headers)
		if step != tc.step || reason != tc.reason || ok != tc.ok {
			t.Errorf("%s: got (%q, %q, %v), want (%q, %q, %v)", tc.name, step, reason, ok, tc.step, tc.reason, tc.ok)
		}
	}
}
