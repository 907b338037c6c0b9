package repair_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/hibiken/asynq"
)

// A requeue's marker belongs to the failure it requeued: once that job has
// run and its ID is free again (asynq drops a completed job after its
// retention), a new job of the same ID that fails and is requeued after
// asynq dropped it from its archive is really put back and runs, not taken
// for the old requeue and marked requeued while it exists nowhere.
func TestRequeueOfALaterFailureOfTheSameJobIDPutsItBack(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.startWorker(t)
		ctx := context.Background()
		const id = "audit_log_created:audit-reused-id"
		const payload = `{"eventId":"e","actor":"a","action":"x","occurredAt":"2026-01-01T00:00:00Z"}`
		e.deadLetters(t, "audit_log_created", payload, id)
		if _, err := e.d.Requeue(ctx, id, "api", "first"); err != nil {
			t.Fatal(err)
		}
		escrowtest.Eventually(t, "the first rerun", 30*time.Second, func() bool { return e.ran(id) == 1 })
		escrowtest.Eventually(t, "the completed job gone", 30*time.Second, func() bool {
			ti, err := e.ai.GetTaskInfo("default", id)
			if err == nil && ti.State == asynq.TaskStateCompleted {
				_ = e.ai.DeleteTask("default", id) // its retention over
			}
			return errors.Is(err, asynq.ErrTaskNotFound)
		})

		// The ID used again by a new job (no run header, as the first),
		// which fails; asynq then trims it from its archive.
		e.deadLetters(t, "audit_log_created", payload, id)
		if err := e.ai.DeleteTask("default", id); err != nil {
			t.Fatal(err)
		}
		got, err := e.d.Requeue(ctx, id, "api", "second")
		if err != nil || got.State != deadletter.StateRequeued {
			t.Fatalf("second requeue: got %+v, %v; want requeued", got, err)
		}
		escrowtest.Eventually(t, "the second rerun", 30*time.Second, func() bool { return e.ran(id) == 2 })
	})
}
