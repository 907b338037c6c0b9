package flows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// startRelay gives e an outbox table in a database of its own and runs a
// relay into e's Redis until the test ends.
func (e *env) startRelay(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	db := peertest.PostgresPool(t)
	if err := outbox.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	r, err := outbox.NewRelay(ctx, outbox.RelayConfig{DB: db, Client: e.client, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return db
}

func TestAddInACommittedTransactionStartsTheFlow(t *testing.T) {
	e := setup(t, nil)
	db := e.startRelay(t)
	e.startWorker(t, 8)
	ctx := context.Background()
	f := build(t, release("esc-outbox"))
	for range 2 { // a second Add of the same flow (a retried request) is the same flow
		if err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return flows.Add(ctx, tx, f) }); err != nil {
			t.Fatal(err)
		}
	}
	v := e.awaitFlow(t, f.ID(), flows.StateCompleted)
	for _, s := range v.Steps {
		if n := e.adapters.Calls(s.JobID); !s.OnFailure && n != 1 {
			t.Errorf("step %s: got %d calls, want 1", s.Name, n)
		}
	}
	start, err := e.insp.Status(ctx, flows.StartType+":"+f.ID())
	if err != nil || start.State != "completed" || start.Queue != "critical" {
		t.Errorf("start job: got %+v, %v; want completed on critical", start, err)
	}
	// The relay delivering the start job again (at least once, after its
	// retention): nothing runs twice, the flow stays completed.
	info, err := e.insp.Asynq().GetTaskInfo("critical", flows.StartType+":"+f.ID())
	if err != nil {
		t.Fatal(err)
	}
	mw := e.store.Middleware(e.client)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		t.Error("the start job reached the handler")
		return nil
	}))
	if err := mw.ProcessTask(ctx, asynq.NewTask(flows.StartType, info.Payload)); err != nil {
		t.Errorf("start job again: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	for _, s := range v.Steps {
		if n := e.adapters.Calls(s.JobID); !s.OnFailure && n != 1 {
			t.Errorf("after the start job ran again, step %s: got %d calls, want 1", s.Name, n)
		}
	}
	if _, err := tasks.Lookup(flows.StartType); err == nil {
		t.Errorf("%s is a registered job type; it must be internal", flows.StartType)
	}
}

func TestAddInARolledBackTransactionLeavesNoFlow(t *testing.T) {
	e := setup(t, nil)
	db := e.startRelay(t)
	e.startWorker(t, 8)
	ctx := context.Background()
	f := build(t, release("esc-rollback"))
	rollback := errors.New("the escrow could not move to releasing")
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := flows.Add(ctx, tx, f); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // several relay polls
	if _, err := e.store.Status(ctx, f.ID()); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("Status: got %v, want ErrNotFound", err)
	}
	if _, err := e.insp.Status(ctx, flows.StartType+":"+f.ID()); !errors.Is(err, tasks.ErrNotFound) {
		t.Errorf("start job: got %v, want ErrNotFound", err)
	}
	var rows int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM escrowjobs_outbox`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("outbox rows: got %d, %v; want 0", rows, err)
	}
	for name, id := range f.JobIDs() {
		if n := e.adapters.Calls(id); n != 0 {
			t.Errorf("step %s ran %d times", name, n)
		}
	}
}
