package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/stdlib"
)

// A service on database/sql (pgx's stdlib driver) adds its jobs with
// AddSQL: a committed transaction's job is relayed, a rolled-back one's
// leaves no job and no row.
func TestAddSQLCommittedIsRelayedRolledBackIsNot(t *testing.T) {
	e := setup(t, "")
	ctx := context.Background()
	db := stdlib.OpenDBFromPool(e.db)
	t.Cleanup(func() { db.Close() })

	inTx := func(f func(tx *sql.Tx) error) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := f(tx); err != nil {
			return errors.Join(err, tx.Rollback())
		}
		return tx.Commit()
	}
	rolledBack := audit(t, "evt-sql-rolled-back")
	err := inTx(func(tx *sql.Tx) error {
		if err := outbox.AddSQL(ctx, tx, rolledBack); err != nil {
			return err
		}
		return errors.New("the escrow change failed")
	})
	if err == nil || err.Error() != "the escrow change failed" {
		t.Fatalf("got %v, want the escrow change's error", err)
	}
	if got, want := e.backlog(t), 0; got != want {
		t.Fatalf("after the rollback: got %d outbox rows, want %d", got, want)
	}
	committed := audit(t, "evt-sql-committed")
	if err := inTx(func(tx *sql.Tx) error { return outbox.AddSQL(ctx, tx, committed) }); err != nil {
		t.Fatal(err)
	}
	if got, want := e.backlog(t), 1; got != want {
		t.Fatalf("after the commit: got %d outbox rows, want %d", got, want)
	}

	e.startRelay(t, outbox.RelayConfig{})
	escrowtest.Eventually(t, "the committed job", 30*time.Second, func() bool { return len(e.pendingIDs(t, "low")) == 1 })
	if got, want := e.pendingIDs(t, "low"), []string{committed.ID}; !slices.Equal(got, want) {
		t.Errorf("got pending %q, want %q", got, want)
	}
	info, err := e.inspect.GetTaskInfo("low", committed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(info.Payload), string(committed.Payload()); got != want {
		t.Errorf("got payload %s, want %s", got, want)
	}
	if _, err := e.inspect.GetTaskInfo("low", rolledBack.ID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("rolled-back job: got %v, want asynq.ErrTaskNotFound", err)
	}
	escrowtest.Eventually(t, "the relayed row gone", 30*time.Second, func() bool { return e.backlog(t) == 0 })
}
