package main

import (
	"context"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
)

func flowAudit(esc, id string) payloads.AuditLogCreated {
	return payloads.AuditLogCreated{EventID: id, Actor: "user-1", Action: "escrow.released", TransactionID: esc, OccurredAt: "2026-11-29T10:00:00Z"}
}

// awaitFlow waits for flow id to reach state want and returns its view.
func awaitFlow(t *testing.T, store *flows.Store, id, want string) flows.View {
	t.Helper()
	var v flows.View
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("flow %s at the end: %+v", id, v)
		}
	})
	escrowtest.Eventually(t, "flow "+id+" "+want, 20*time.Second, func() bool {
		var err error
		v, err = store.Status(context.Background(), id)
		return err == nil && v.State == want
	})
	return v
}

// The production worker (run, in process) runs flows: each step's success
// enqueues the steps after it (the middleware on its handler), and a
// dead-lettered step fails the flow, blocks its dependents and runs the
// on-failure step (worker.Config.Flows).
func TestProductionWorkerRunsFlows(t *testing.T) {
	e := setupPartners(t, map[string]regEntry{"p1": {URL: "https://example.com/hook", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, nil)
	e.start()
	store := flows.NewStore(e.rc, e.insp)
	ctx := context.Background()

	t.Run("completes", func(t *testing.T) {
		const esc = "esc-srv-flow-1"
		f, err := flows.New("release", esc).
			Step("first", flowAudit(esc, "evt-srv-first")).
			Step("left", flowAudit(esc, "evt-srv-left"), flows.After("first")).
			Step("right", flowAudit(esc, "evt-srv-right"), flows.After("first")).
			Step("last", flowAudit(esc, "evt-srv-last"), flows.After("left", "right")).
			Build()
		if err != nil {
			t.Fatal(err)
		}
		id, err := flows.Start(ctx, e.client, f)
		if err != nil {
			t.Fatal(err)
		}
		v := awaitFlow(t, store, id, flows.StateCompleted)
		for _, s := range v.Steps {
			if got, want := s.State, flows.StepCompleted; got != want {
				t.Errorf("step %s: got %s, want %s", s.Name, got, want)
			}
		}
	})

	t.Run("a dead-lettered step fails the flow", func(t *testing.T) {
		const esc = "esc-srv-flow-2"
		hook := payloads.WebhookEscrowStatusChanged{EventID: "evt-srv-hook", PartnerID: "partner-nobody", TransactionID: esc,
			PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: "2026-11-29T10:00:00Z"}
		f, err := flows.New("release", esc).
			Step("partner-webhook", hook).
			Step("after-hook", flowAudit(esc, "evt-srv-after-hook"), flows.After("partner-webhook")).
			OnFailure("failure-audit", flowAudit(esc, "evt-srv-failed")).
			Build()
		if err != nil {
			t.Fatal(err)
		}
		id, err := flows.Start(ctx, e.client, f)
		if err != nil {
			t.Fatal(err)
		}
		awaitFlow(t, store, id, flows.StateFailed)
		want := map[string]string{"partner-webhook": flows.StepFailed, "after-hook": flows.StepBlocked, "failure-audit": flows.StepCompleted}
		escrowtest.Eventually(t, "the steps of "+id, 20*time.Second, func() bool {
			v, err := store.Status(ctx, id)
			if err != nil {
				return false
			}
			for _, s := range v.Steps {
				if s.State != want[s.Name] {
					return false
				}
			}
			return true
		})
	})
}
