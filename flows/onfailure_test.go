package flows_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
)

// The on-failure step's job carries the step that failed, its error and
// the steps completed by then, and the audit handler writes them into the
// event's metadata: the failure audit record says why, and that no money
// moved (the capture is not among the completed steps).
func TestOnFailureStepSaysWhichStepFailedAndWhy(t *testing.T) {
	e := setup(t, nil)
	v, _ := failedRelease(t, e, "esc-why")
	meta := failureAuditMeta(t, e, v)
	if meta.FailedStep != "capture" || !strings.Contains(meta.Failure, "charge_expired_for_capture") {
		t.Errorf("failure-audit metadata: got %+v, want failedStep capture and the capture's error", meta)
	}
	if want := []string{"audit"}; !slices.Equal(meta.CompletedSteps, want) {
		t.Errorf("failure-audit completedSteps: got %q, want %q (the capture did not complete)", meta.CompletedSteps, want)
	}
}

// A step after the money step fails for good: the failure audit record
// says the capture completed, so nobody reads "release failed" as "no
// money moved".
func TestFailureAfterTheCaptureSaysTheCaptureCompleted(t *testing.T) {
	e := setup(t, nil)
	e.adapters.FailWith(func(id string, _ int) error {
		if strings.HasPrefix(id, (payloads.SendReleaseEmail{}).TaskType()+":") {
			return fmt.Errorf("smtp: 550 mailbox unavailable: %w", asynq.SkipRetry)
		}
		return nil
	})
	e.startWorker(t, 8)
	f := build(t, release("esc-after"))
	if _, err := flows.Start(context.Background(), e.client, f); err != nil {
		t.Fatal(err)
	}
	v := e.awaitFlow(t, f.ID(), flows.StateFailed)
	escrowtest.Eventually(t, "failure-audit done", 10*time.Second, func() bool {
		return e.adapters.Calls(step(t, v, "failure-audit").JobID) == 1
	})
	meta := failureAuditMeta(t, e, v)
	if meta.FailedStep != "seller-email" || !slices.Contains(meta.CompletedSteps, "capture") {
		t.Errorf("failure-audit metadata: got %+v, want failedStep seller-email and capture among the completed steps", meta)
	}
}

// auditMeta is what the failure audit record's metadata says of the flow.
type auditMeta struct {
	FailedStep     string   `json:"failedStep"`
	Failure        string   `json:"failure"`
	CompletedSteps []string `json:"completedSteps"`
}

func failureAuditMeta(t *testing.T, e *env, v flows.View) auditMeta {
	t.Helper()
	id := step(t, v, "failure-audit").JobID
	ev, ok := e.adapters.Payload(id).(payloads.AuditLogCreated)
	if !ok {
		t.Fatalf("failure-audit: got %T, want the audit event", e.adapters.Payload(id))
	}
	var meta auditMeta
	if err := json.Unmarshal(ev.Metadata, &meta); err != nil {
		t.Fatalf("failure-audit metadata %s: %v", ev.Metadata, err)
	}
	return meta
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

func TestCompletedStepsOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    []string
		ok      bool
	}{
		{"two completed", map[string]string{flows.HeaderCompletedSteps: "capture,audit"}, []string{"capture", "audit"}, true},
		{"none completed", map[string]string{flows.HeaderCompletedSteps: ""}, []string{}, true},
		{"not carried", map[string]string{flows.HeaderFailedStep: "capture"}, nil, false},
	} {
		got, ok := flows.CompletedStepsOf(tc.headers)
		if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) || ok != tc.ok {
			t.Errorf("%s: got (%q, %v), want (%q, %v)", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
