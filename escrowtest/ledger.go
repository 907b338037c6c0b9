package escrowtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/postgres"
)

// Ledger opens a fresh, empty dead-letter ledger of store: "file" (a
// JSON-lines file in the test's temporary directory) or "postgres" (a
// private database of the test cluster, migrated). It is closed at
// cleanup. A test package that uses "postgres" stops the cluster in its
// TestMain (peertest.RunMain).
func Ledger(t testing.TB, store string) deadletter.Ledger {
	t.Helper()
	switch store {
	case "file":
		l, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dl.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	case "postgres":
		db, err := postgres.Open(context.Background(), peertest.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		if err := db.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return db.DeadLetters()
	}
	t.Fatalf("escrowtest: ledger store %q: want file or postgres", store)
	return nil
}
