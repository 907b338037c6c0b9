package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/audit"
)

// TestFileMemoryIsBounded: the sink remembers at most RememberAtMost event
// IDs and none older than RememberFor, when it writes and when it reads an
// existing file at start.
func TestFileMemoryIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	// An existing file: 50 records from two days ago, 50 from a minute ago.
	var b strings.Builder
	for i := range 100 {
		at := time.Now().Add(-48 * time.Hour)
		if i >= 50 {
			at = time.Now().Add(-time.Minute)
		}
		line, _ := json.Marshal(audit.Record{AuditLogCreated: event(fmt.Sprintf("old-%d", i)), RecordedAt: at.UTC()})
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := audit.OpenFile(path, audit.RememberFor(25*time.Hour), audit.RememberAtMost(80))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := f.Remembered(), 50; got != want {
		t.Errorf("after opening: got %d event IDs remembered, want %d (only the last 25 h)", got, want)
	}
	for i := range 1000 {
		if err := f.WriteAudit(context.Background(), event(fmt.Sprintf("new-%d", i))); err != nil {
			t.Fatal(err)
		}
		if got := f.Remembered(); got > 80 {
			t.Fatalf("after %d writes: got %d event IDs remembered, want at most 80", i+1, got)
		}
	}
	// The most recent ones are still deduplicated.
	if err := f.WriteAudit(context.Background(), event("new-999")); err != nil {
		t.Fatal(err)
	}
	if raw, _ := lines(t, path); len(raw) != 1100 {
		t.Errorf("got %d lines, want 1100 (the repeat of new-999 ignored)", len(raw))
	}
	if got := audit.DefaultRememberFor; got < 25*time.Hour {
		t.Errorf("DefaultRememberFor: got %v, want at least 25 h", got)
	}
}
