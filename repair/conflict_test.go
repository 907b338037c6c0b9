package repair_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/retry"
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

// archivedDeadLetter makes a dead letter of id without a worker (so a job
// put back stays pending): enqueued, archived by asynq's inspector, and
// recorded in the ledger from the archive.
func (e *env) archivedDeadLetter(t *testing.T, id string) {
	t.Helper()
	if _, err := e.c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{"eventId":"e"}`)), asynq.TaskID(id), asynq.MaxRetry(retry.Max)); err != nil {
		t.Fatal(err)
	}
	if err := e.ai.ArchiveTask("default", id); err != nil {
		t.Fatal(err)
	}
	ti, err := e.ai.GetTaskInfo("default", id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Record(context.Background(), repair.EntryFromTask(ti)); err != nil {
		t.Fatal(err)
	}
}

// A discard and a requeue of one dead letter, interleaved at every step of
// the requeue: whichever gets there first stands, the other says
// ErrConflict, and the ledger never says discarded while the job is in a
// queue (nor requeued while it is nowhere).
func TestDiscardAndRequeueRace(t *testing.T) {
	ledgerDown := errors.New("ledger unreachable (injected)")
	tests := []struct {
		name string
		// interleave sets the desk's hooks; discard discards the dead
		// letter (once) and keeps its error for the checks.
		interleave   func(d *repair.Desk, discard func())
		after        func(t *testing.T, e *env, id string) // before the discard, once the requeue returned
		wantRequeue  error
		wantDiscard  error
		wantState    string
		wantInRedis  asynq.TaskState // 0: nowhere
		requeueAgain bool            // a requeue then completes the record
	}{
		{
			name:        "discard between the requeue's read and its move",
			interleave:  func(d *repair.Desk, discard func()) { repair.SetBeforeMove(d, discard) },
			wantRequeue: repair.ErrConflict, wantState: deadletter.StateDiscarded,
		},
		{
			name: "discard between the requeue's move and its ledger write",
			interleave: func(d *repair.Desk, discard func()) {
				repair.SetAfterMove(d, func() error { discard(); return nil })
			},
			wantDiscard: repair.ErrConflict, wantState: deadletter.StateRequeued, wantInRedis: asynq.TaskStatePending,
		},
		{
			name: "discard after a requeue whose ledger write failed",
			interleave: func(d *repair.Desk, _ func()) {
				repair.SetAfterMove(d, func() error { return ledgerDown })
			},
			wantRequeue: ledgerDown, wantDiscard: repair.ErrConflict, wantState: deadletter.StateOpen, wantInRedis: asynq.TaskStatePending, requeueAgain: true,
		},
		{
			name: "discard of a requeued job that is running",
			interleave: func(d *repair.Desk, _ func()) {
				repair.SetAfterMove(d, func() error { return ledgerDown })
			},
			after: func(t *testing.T, e *env, id string) { // what asynq does when a worker takes it
				rc := e.in.Redis()
				ctx := context.Background()
				if err := rc.LRem(ctx, asynqkey.Pending("default"), 0, id).Err(); err != nil {
					t.Fatal(err)
				}
				rc.LPush(ctx, asynqkey.Active("default"), id)
				rc.HSet(ctx, asynqkey.Task("default", id), "state", "active")
			},
			wantRequeue: ledgerDown, wantDiscard: repair.ErrConflict, wantState: deadletter.StateOpen, wantInRedis: asynq.TaskStateActive,
		},
	}
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := fmt.Sprint("audit_log_created:audit-race-", i)
				e.archivedDeadLetter(t, id)
				var derr error
				discarded := false
				discard := func() {
					discarded = true
					_, derr = e.d.Discard(ctx, id, "bob", "not needed")
				}
				tt.interleave(e.d, discard)
				_, rerr := e.d.Requeue(ctx, id, "alice", "retry")
				repair.SetBeforeMove(e.d, nil)
				repair.SetAfterMove(e.d, nil)
				if !errors.Is(rerr, tt.wantRequeue) || (tt.wantRequeue == nil && rerr != nil) {
					t.Errorf("requeue: got %v, want %v", rerr, tt.wantRequeue)
				}
				if tt.after != nil {
					tt.after(t, e, id)
				}
				if !discarded {
					discard()
				}
				if !errors.Is(derr, tt.wantDiscard) || (tt.wantDiscard == nil && derr != nil) {
					t.Errorf("discard: got %v, want %v", derr, tt.wantDiscard)
				}
				if got, _ := e.l.Get(ctx, id); got.State != tt.wantState {
					t.Errorf("ledger: got %s, want %s", got.State, tt.wantState)
				}
				ti, err := e.ai.GetTaskInfo("default", id)
				switch {
				case tt.wantInRedis == 0 && !errors.Is(err, asynq.ErrTaskNotFound):
					t.Errorf("asynq: got %+v, %v; want the job nowhere", ti, err)
				case tt.wantInRedis != 0 && (err != nil || ti.State != tt.wantInRedis):
					t.Errorf("asynq: got %+v, %v; want %s", ti, err, tt.wantInRedis)
				}
				if tt.wantState == deadletter.StateDiscarded {
					if _, err := e.d.Requeue(ctx, id, "carol", "again"); !errors.Is(err, deadletter.ErrNotOpen) {
						t.Errorf("requeue after the discard: got %v, want ErrNotOpen", err)
					}
				}
				if tt.requeueAgain {
					if got, err := e.d.Requeue(ctx, id, "alice", "record it"); err != nil || got.State != deadletter.StateRequeued {
						t.Errorf("requeue again: got %+v, %v; want requeued", got, err)
					}
				}
			})
		}
	})
}

// A requeue whose ledger write finds the record discarded (a discard
// recorded behind the desk's back, as a version before takeOut did) says
// so with ErrConflict instead of reporting success.
func TestRequeueReportsARecordDiscardedUnderIt(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const id = "audit_log_created:audit-discarded-under"
		e.archivedDeadLetter(t, id)
		repair.SetAfterMove(e.d, func() error {
			_, err := e.l.MarkDiscarded(ctx, id, deadletter.Resolution{Actor: "bob", Reason: "old discard", At: time.Now()})
			return err
		})
		if _, err := e.d.Requeue(ctx, id, "alice", "retry"); !errors.Is(err, repair.ErrConflict) {
			t.Errorf("got %v, want ErrConflict", err)
		}
	})
}
