package escrowtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// StartWorker runs flows as cmd/server does: a step's success enqueues
// the steps after it, and the flow completes.
func TestStartWorkerRunsFlows(t *testing.T) {
	opt := escrowtest.RedisOpt(t, map[string]string{"REDIS_URL": peertest.Redis(t)})
	client, insp := tasks.NewClient(opt), tasks.NewInspector(opt)
	t.Cleanup(func() { client.Close(); insp.Close() })
	escrowtest.StartWorker(t, escrowtest.WorkerConfig{Redis: opt, Adapters: escrowtest.NewAdapters(), Enqueuer: client})
	audit := func(id string) payloads.AuditLogCreated {
		return payloads.AuditLogCreated{EventID: id, Actor: "user-1", Action: "escrow.released", TransactionID: "esc-kit-1", OccurredAt: "2026-11-29T10:00:00Z"}
	}
	f, err := flows.New("release", "esc-kit-1").
		Step("first", audit("evt-kit-first")).
		Step("second", audit("evt-kit-second"), flows.After("first")).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	id, err := flows.Start(context.Background(), client, f)
	if err != nil {
		t.Fatal(err)
	}
	store := flows.NewStore(client.Redis(), insp)
	var v flows.View
	escrowtest.Eventually(t, "flow "+id+" completed", 20*time.Second, func() bool {
		v, err = store.Status(context.Background(), id)
		return err == nil && v.State == flows.StateCompleted
	})
	for _, s := range v.Steps {
		if got, want := s.State, flows.StepCompleted; got != want {
			t.Errorf("step %s: got %s, want %s", s.Name, got, want)
		}
	}
}
