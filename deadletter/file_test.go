package deadletter_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/deadletter/ledgertest"
)

func openFile(t *testing.T, path string) *deadletter.File {
	t.Helper()
	l, err := deadletter.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestFileConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) deadletter.Ledger {
		return openFile(t, filepath.Join(t.TempDir(), "dl.jsonl"))
	})
}

func listIDs(t *testing.T, l deadletter.Ledger) []string {
	t.Helper()
	p, err := l.List(context.Background(), deadletter.Filter{}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range p.Entries {
		out = append(out, e.ID)
	}
	return out
}

func TestFileSurvivesATornLineAndReadsOldFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dl.jsonl")
	// A file written before the ledger, then a crash mid-write.
	old := `{"id":"job-1","type":"audit_log_created","queue":"low","payload":{"eventId":"e"},"lastError":"boom","attempts":4,"permanent":true,"archivedAt":"2026-01-01T00:00:01Z"}
{"id":"job-2","type":"audit_log_created","queue":"low","payload":null,"lastError":"boom","attempts":4,"permanent":false,"archivedAt":"2026-01-01T00:00:02Z"}
{"op":"record","seq":3,"id":"job-3","ty`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	l := openFile(t, path)
	ctx := context.Background()
	if _, err := l.Record(ctx, deadletter.Entry{ID: "job-4", Type: "audit_log_created", FailedAt: time.Date(2026, 1, 1, 0, 0, 4, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if got, want := listIDs(t, l), []string{"job-4", "job-2", "job-1"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	e, err := l.Get(ctx, "job-1")
	if err != nil || e.Why != deadletter.WhyPermanent || e.Error != "boom" || e.State != deadletter.StateOpen || !e.PayloadInexact {
		t.Errorf("old record: got %+v, %v; want open, permanent, error boom, payload inexact (masked)", e, err)
	}
	// Reopened, the file reads the same.
	l.Close()
	if got, want := listIDs(t, openFile(t, path)), []string{"job-4", "job-2", "job-1"}; !slices.Equal(got, want) {
		t.Errorf("reopened: got %v, want %v", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("got mode %v, want 0600 (payloads are customer data)", fi.Mode().Perm())
	}
}

// The worker records and the monitor resolves through two handles on one
// file; each sees the other's events, also across a compaction.
func TestFileSharedByTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dl.jsonl")
	worker, monitor := openFile(t, path), openFile(t, path)
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 3; i++ {
		if _, err := worker.Record(ctx, deadletter.Entry{ID: fmt.Sprint("job-", i), FailedAt: at.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := monitor.MarkDiscarded(ctx, "job-1", deadletter.Resolution{Actor: "op", Reason: "dup", At: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ok, err := monitor.Record(ctx, deadletter.Entry{ID: "job-2", FailedAt: at.Add(5 * time.Second)}); ok || err != nil {
		t.Errorf("the monitor re-recording the worker's failure: got %v, %v; want false, nil", ok, err)
	}
	if n, err := monitor.Purge(ctx, at.Add(2*time.Hour)); n != 1 || err != nil {
		t.Fatalf("Purge: got %d, %v", n, err)
	}
	if _, err := worker.Record(ctx, deadletter.Entry{ID: "job-9", FailedAt: at.Add(9 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*deadletter.File{"worker": worker, "monitor": monitor} {
		if got, want := listIDs(t, l), []string{"job-9", "job-3", "job-2"}; !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}

// A Record retried after its fsync failed appends the same failure a
// second time (internal/jsonl does not take an unsynced line as stored).
// Every reader shows it once, resolves it once, and a new failure of the
// same job after a requeue (a new run) is still a second record.
func TestFileShowsAFailureWrittenTwiceOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dl.jsonl")
	failed := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	w := openFile(t, path)
	if _, err := w.Record(ctx, deadletter.Entry{ID: "job-1", Type: "audit_log_created", FailedAt: failed}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, b...), 0o600); err != nil { // the retried append
		t.Fatal(err)
	}
	l := openFile(t, path)
	if got, want := listIDs(t, l), []string{"job-1"}; !slices.Equal(got, want) {
		t.Fatalf("a failure written twice: got %v, want %v", got, want)
	}
	if recorded, err := l.Record(ctx, deadletter.Entry{ID: "job-1", Type: "audit_log_created", FailedAt: failed}); err != nil || recorded {
		t.Errorf("Record of the same failure again: got %v, %v; want false, nil", recorded, err)
	}
	n, err := l.MarkRequeued(ctx, "job-1", deadletter.Resolution{Actor: "test", At: failed.Add(time.Minute), Run: "run-2"})
	if err != nil || n != 1 {
		t.Fatalf("MarkRequeued: got %d, %v; want 1, nil", n, err)
	}
	if _, err := l.Record(ctx, deadletter.Entry{ID: "job-1", Type: "audit_log_created", Run: "run-2", FailedAt: failed.Add(2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	p, err := openFile(t, path).List(ctx, deadletter.Filter{}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range p.Entries {
		got = append(got, e.Run+"/"+e.State)
	}
	if want := []string{"run-2/open", "/requeued"}; !slices.Equal(got, want) {
		t.Errorf("reopened after requeue and a new failure: got %v, want %v", got, want)
	}
}
