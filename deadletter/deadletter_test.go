package deadletter_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
)

func TestFileListsNewestFirstAndSurvivesATornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dl.jsonl")
	l, err := deadletter.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if err := l.Record(ctx, deadletter.Entry{ID: fmt.Sprint("job-", i), Type: "audit_log_created", Attempts: 4, ArchivedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// A crash mid-write leaves a torn last line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"job-4","ty`)
	f.Close()
	l, err = deadletter.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Record(ctx, deadletter.Entry{ID: "job-5"}); err != nil {
		t.Fatal(err)
	}
	got, err := l.List(ctx, 3)
	if err != nil || len(got) != 3 || got[0].ID != "job-5" || got[1].ID != "job-3" || got[2].ID != "job-2" {
		t.Errorf("got %+v (%v), want job-5, job-3, job-2", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("got mode %v, want 0600 (payloads are customer data)", fi.Mode().Perm())
	}
}
