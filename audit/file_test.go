package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/escrowjobs/escrowjobs/audit"
	"github.com/escrowjobs/escrowjobs/payloads"
)

func event(id string) payloads.AuditLogCreated {
	return payloads.AuditLogCreated{
		EventID: id, Actor: "user-1", Action: "escrow.released", TransactionID: "esc-123",
		OccurredAt: "2024-05-01T12:00:00Z", Metadata: json.RawMessage(`{"amount":12500}`),
	}
}

// setup returns the path of a fresh audit file and the file opened on it.
func setup(t *testing.T) (string, *audit.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	return path, open(t, path)
}

func open(t *testing.T, path string) *audit.File {
	t.Helper()
	f, err := audit.OpenFile(path)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// lines returns the raw lines of the file and the eventIds of those that decode.
func lines(t *testing.T, path string) (raw []string, ids []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		raw = append(raw, sc.Text())
		var r audit.Record
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			ids = append(ids, r.EventID)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return raw, ids
}

func TestFileInsertOrIgnore(t *testing.T) {
	tests := []struct {
		name string
		// writes are eventIds; "reopen" closes the file and opens it again.
		writes  []string
		wantIDs []string
	}{
		{"one event", []string{"ev-1"}, []string{"ev-1"}},
		{"same event twice", []string{"ev-1", "ev-1"}, []string{"ev-1"}},
		{"two events", []string{"ev-1", "ev-2"}, []string{"ev-1", "ev-2"}},
		{"same event after reopen", []string{"ev-1", "reopen", "ev-1"}, []string{"ev-1"}},
		{"new event after reopen", []string{"ev-1", "reopen", "ev-2", "ev-1", "reopen", "ev-2"}, []string{"ev-1", "ev-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, f := setup(t)
			for _, w := range tt.writes {
				if w == "reopen" {
					if err := f.Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
					f = open(t, path)
					continue
				}
				if err := f.WriteAudit(context.Background(), event(w)); err != nil {
					t.Fatalf("WriteAudit(%s): %v", w, err)
				}
			}
			raw, ids := lines(t, path)
			if !slices.Equal(ids, tt.wantIDs) || len(raw) != len(tt.wantIDs) {
				t.Errorf("got lines %q (ids %v), want ids %v, one line each", raw, ids, tt.wantIDs)
			}
		})
	}
}

func TestFileRecordFields(t *testing.T) {
	path, f := setup(t)
	want := event("ev-1")
	if err := f.WriteAudit(context.Background(), want); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	raw, _ := lines(t, path)
	if len(raw) != 1 {
		t.Fatalf("got %d lines, want 1", len(raw))
	}
	var got audit.Record
	if err := json.Unmarshal([]byte(raw[0]), &got); err != nil {
		t.Fatalf("decode %q: %v", raw[0], err)
	}
	if got.EventID != want.EventID || got.Actor != want.Actor || got.Action != want.Action ||
		got.TransactionID != want.TransactionID || got.OccurredAt != want.OccurredAt || string(got.Metadata) != string(want.Metadata) {
		t.Errorf("got %+v, want %+v", got.AuditLogCreated, want)
	}
	if got.RecordedAt.IsZero() {
		t.Errorf("got recordedAt zero, want the time of the write")
	}
}

func TestFileTornLastLine(t *testing.T) {
	good, _ := json.Marshal(audit.Record{AuditLogCreated: event("ev-1")})
	complete, _ := json.Marshal(audit.Record{AuditLogCreated: event("ev-2")})
	tests := []struct {
		name    string
		content string
		writes  []string
		wantIDs []string
	}{
		{"torn line is not counted", string(good) + "\n" + `{"eventId":"ev-2","act`,
			[]string{"ev-1", "ev-2", "ev-3"}, []string{"ev-1", "ev-2", "ev-3"}},
		{"complete json without newline is counted", string(good) + "\n" + string(complete),
			[]string{"ev-1", "ev-2", "ev-3"}, []string{"ev-1", "ev-2", "ev-3"}},
		{"garbage in the middle is skipped", string(good) + "\n\x00\x00garbage\n",
			[]string{"ev-1", "ev-2"}, []string{"ev-1", "ev-2"}},
		{"only a torn line", `{"eventId":"ev-1"`, []string{"ev-1"}, []string{"ev-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			f := open(t, path)
			for _, id := range tt.writes {
				if err := f.WriteAudit(context.Background(), event(id)); err != nil {
					t.Fatalf("WriteAudit(%s): %v", id, err)
				}
			}
			_, ids := lines(t, path)
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("got ids %v, want %v", ids, tt.wantIDs)
			}
			b, _ := os.ReadFile(path)
			if len(b) < len(tt.content) || string(b[:len(tt.content)]) != tt.content {
				t.Errorf("got file starting %q, want the old content kept (append-only) %q", b, tt.content)
			}
		})
	}
}

func TestFileConcurrent(t *testing.T) {
	path, f := setup(t)
	const writers, events = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*events)
	for w := range writers {
		wg.Go(func() {
			for i := range events {
				// Every writer writes every event, in a different order.
				id := fmt.Sprintf("ev-%d", (i+w)%events)
				if err := f.WriteAudit(context.Background(), event(id)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("WriteAudit: %v", err)
	}
	raw, ids := lines(t, path)
	slices.Sort(ids)
	if len(raw) != events || len(slices.Compact(ids)) != events {
		t.Errorf("got %d lines with %d distinct ids, want %d of each", len(raw), len(slices.Compact(ids)), events)
	}
}

func TestFilePermanentErrors(t *testing.T) {
	bad := event("ev-1")
	bad.Metadata = json.RawMessage(`{not json`)
	tests := []struct {
		name string
		e    payloads.AuditLogCreated
	}{
		{"no eventId", payloads.AuditLogCreated{Actor: "a", Action: "b", OccurredAt: "2024-05-01T12:00:00Z"}},
		{"metadata not json", bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, f := setup(t)
			err := f.WriteAudit(context.Background(), tt.e)
			if !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("got error %v, want one wrapping asynq.SkipRetry", err)
			}
			if raw, _ := lines(t, path); len(raw) != 0 {
				t.Errorf("got lines %q, want none", raw)
			}
		})
	}
}

func TestOpenFileErrorNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "audit.jsonl")
	_, err := audit.OpenFile(path)
	if err == nil {
		t.Fatalf("got nil error opening %s, want one", path)
	}
	if got := err.Error(); !strings.Contains(got, path) {
		t.Errorf("got error %q, want it to name %s", got, path)
	}
}
