package flows_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/hibiken/asynq"
)

// failCapture makes the capture of flow esc fail permanently while fail
// is set.
func failCapture(e *env, esc string, fail *atomic.Bool) {
	pi := "pi_3Mtw" + strings.ReplaceAll(esc, "-", "")
	e.adapters.FailWith(func(id string, _ int) error {
		if fail.Load() && strings.HasSuffix(id, pi) {
			return fmt.Errorf("stripe: capture %s: charge_expired_for_capture: %w", pi, asynq.SkipRetry)
		}
		return nil
	})
}

// failedRelease starts the release of esc with a capture that fails for
// good, and returns it once failed.
func failedRelease(t *testing.T, e *env, esc string) (flows.View, *atomic.Bool) {
	t.Helper()
	var fail atomic.Bool
	fail.Store(true)
	failCapture(e, esc, &fail)
	e.startWorker(t, 8)
	f := build(t, release(esc))
	if _, err := flows.Start(context.Background(), e.client, f); err != nil {
		t.Fatal(err)
	}
	v := e.awaitFlow(t, f.ID(), flows.StateFailed)
	escrowtest.Eventually(t, "failure-audit done", 10*time.Second, func() bool {
		return e.adapters.Calls(step(t, v, "failure-audit").JobID) == 1
	})
	v = e.awaitFlow(t, f.ID(), flows.StateFailed)
	return v, &fail
}

func TestPermanentFailureBlocksDependentsAndRunsOnFailureOnce(t *testing.T) {
	e := setup(t, nil)
	v, _ := failedRelease(t, e, "esc-fail")
	want := map[string]string{"capture": flows.StepFailed, "seller-email": flows.StepBlocked, "partner-webhook": flows.StepBlocked,
		"audit": flows.StepCompleted, "failure-audit": flows.StepCompleted}
	for _, s := range v.Steps {
		if s.State != want[s.Name] {
			t.Errorf("step %s: got %s, want %s", s.Name, s.State, want[s.Name])
		}
	}
	if s := step(t, v, "capture"); !strings.Contains(s.LastError, "charge_expired_for_capture") || s.Attempts != 1 {
		t.Errorf("capture: got attempts %d, error %q", s.Attempts, s.LastError)
	}
	if name, _ := v.FailedStep(); name != "capture" {
		t.Errorf("FailedStep: got %q", name)
	}
	for _, name := range []string{"seller-email", "partner-webhook"} {
		if n := e.adapters.Calls(step(t, v, name).JobID); n != 0 {
			t.Errorf("%s ran %d times after the capture failed", name, n)
		}
	}
	// Failed again (the archive sweep, a second report): nothing runs twice.
	if err := e.store.Failed(context.Background(), v.ID, "capture", "again"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := e.adapters.Calls(step(t, v, "failure-audit").JobID); n != 1 {
		t.Errorf("failure-audit: got %d calls, want 1", n)
	}
	page, err := e.dl.List(context.Background(), deadletter.Filter{}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 || page.Entries[0].Flow != v.ID || page.Entries[0].Step != "capture" {
		t.Fatalf("dead letters: got %+v, want the capture's naming flow %s and step capture", page.Entries, v.ID)
	}
}

func TestRequeuedStepRunsItsDependentsAndCompletesTheFlow(t *testing.T) {
	e := setup(t, nil)
	v, fail := failedRelease(t, e, "esc-requeue")
	fail.Store(false)
	ctx := context.Background()
	capture := step(t, v, "capture")
	if err := e.store.Requeued(ctx, v.ID, "capture"); err != nil {
		t.Fatal(err)
	}
	after, _ := e.store.Status(ctx, v.ID)
	if after.State != flows.StateRunning || step(t, after, "seller-email").State != flows.StepWaiting {
		t.Errorf("after Requeued: got flow %s, seller-email %s; want running, waiting", after.State, step(t, after, "seller-email").State)
	}
	if err := e.insp.Asynq().RunTask("critical", capture.JobID); err != nil {
		t.Fatal(err)
	}
	v = e.awaitFlow(t, v.ID, flows.StateCompleted)
	for _, s := range v.Steps {
		if s.State != flows.StepCompleted {
			t.Errorf("step %s: got %s, want completed", s.Name, s.State)
		}
	}
	for name, want := range map[string]int{"capture": 2, "seller-email": 1, "partner-webhook": 1, "audit": 1, "failure-audit": 1} {
		if n := e.adapters.Calls(step(t, v, name).JobID); n != want {
			t.Errorf("%s: got %d calls, want %d", name, n, want)
		}
	}
}

func TestDiscardedStepCancelsTheFlow(t *testing.T) {
	e := setup(t, nil)
	v, _ := failedRelease(t, e, "esc-discard")
	if err := e.store.Discarded(context.Background(), v.ID, "capture"); err != nil {
		t.Fatal(err)
	}
	v = e.awaitFlow(t, v.ID, flows.StateCancelled)
	want := map[string]string{"capture": flows.StepCancelled, "seller-email": flows.StepCancelled, "partner-webhook": flows.StepCancelled,
		"audit": flows.StepCompleted, "failure-audit": flows.StepCompleted}
	for _, s := range v.Steps {
		if s.State != want[s.Name] {
			t.Errorf("step %s: got %s, want %s", s.Name, s.State, want[s.Name])
		}
	}
	if page, _ := e.store.List(context.Background(), flows.Filter{State: flows.StateCancelled}, "", 10); len(page.Items) != 1 {
		t.Errorf("cancelled flows: got %d, want 1", len(page.Items))
	}
	if err := e.store.Discarded(context.Background(), v.ID, "nope"); err == nil {
		t.Error("Discarded of an unknown step: got no error")
	}
}

// A dead letter that asynq no longer holds (its archive is capped) is
// rebuilt from the ledger by the desk's requeue with its flow and step
// headers, so its success advances the flow; the desk's requeue makes the
// flow running again at once.
func TestRequeueRebuiltFromTheLedgerAdvancesTheFlow(t *testing.T) {
	e := setup(t, nil)
	v, fail := failedRelease(t, e, "esc-rebuild")
	fail.Store(false)
	ctx := context.Background()
	capture := step(t, v, "capture")
	if ok, err := e.insp.DeleteArchived(ctx, "critical", capture.JobID); err != nil || !ok {
		t.Fatalf("DeleteArchived: %v, %v", ok, err)
	}
	e.adapters.Hold() // the requeued capture waits in its handler
	desk := repair.NewDesk(e.insp, e.dl)
	if _, err := desk.Requeue(ctx, capture.JobID, "test", "Stripe is back"); err != nil {
		t.Fatal(err)
	}
	running, _ := e.store.Status(ctx, v.ID)
	if running.State != flows.StateRunning || step(t, running, "seller-email").State != flows.StepWaiting {
		t.Errorf("after the desk's requeue: got flow %s, seller-email %s; want running, waiting", running.State, step(t, running, "seller-email").State)
	}
	e.adapters.Release()
	v = e.awaitFlow(t, v.ID, flows.StateCompleted)
	for name, want := range map[string]int{"capture": 2, "seller-email": 1, "partner-webhook": 1, "failure-audit": 1} {
		if n := e.adapters.Calls(step(t, v, name).JobID); n != want {
			t.Errorf("%s: got %d calls, want %d", name, n, want)
		}
	}
}

// The desk's discard of a flow step's dead letter cancels the flow.
func TestDeskDiscardCancelsTheFlow(t *testing.T) {
	e := setup(t, nil)
	v, _ := failedRelease(t, e, "esc-desk-discard")
	desk := repair.NewDesk(e.insp, e.dl)
	if _, err := desk.Discard(context.Background(), step(t, v, "capture").JobID, "test", "the buyer cancelled"); err != nil {
		t.Fatal(err)
	}
	v = e.awaitFlow(t, v.ID, flows.StateCancelled)
	if s := step(t, v, "seller-email"); s.State != flows.StepCancelled {
		t.Errorf("seller-email: got %s, want cancelled", s.State)
	}
}
