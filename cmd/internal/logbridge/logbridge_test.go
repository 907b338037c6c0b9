package logbridge

import (
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// TestStdLogLinesBecomeJSON: what a library prints with the log package
// (asynqmon: log.Printf("error: could not delete task …")) arrives as one
// JSON record per line, addresses masked.
func TestStdLogLinesBecomeJSON(t *testing.T) {
	var buf peertest.Buffer
	l := log.New(Writer(slog.New(slog.NewJSONHandler(&buf, nil)), slog.LevelWarn), "", 0)
	l.Printf("error: could not delete task with id %q: %v", "t1", "mailbox jane@bücher.de full")
	l.Print("two\nlines")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{`error: could not delete task with id "t1": mailbox j***@bücher.de full`, "two", "lines"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, line := range lines {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %q", i+1, line)
		}
		if rec.Msg != want[i] || rec.Level != "WARN" {
			t.Errorf("line %d: got %s %q, want WARN %q", i+1, rec.Level, rec.Msg, want[i])
		}
	}
}

// TestRedisLoggerIsBounded: a burst of go-redis complaints makes one line
// per interval, the next one counting the dropped ones.
func TestRedisLoggerIsBounded(t *testing.T) {
	var buf peertest.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := NewRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)), time.Second)
	r.now = func() time.Time { return now }
	for i := 0; i < 500; i++ {
		r.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %s", 5, "connection refused")
		now = now.Add(10 * time.Millisecond) // 5 s in all
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Errorf("500 complaints over 5 s: got %d lines, want 5:\n%s", len(lines), buf.String())
	}
	var rec struct {
		Msg     string
		Dropped int
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil || rec.Dropped != 99 || rec.Msg != "redis: connection pool: failed to dial after 5 attempts: connection refused" {
		t.Errorf("last line: got %+v (err %v), want the message once and dropped 99", rec, err)
	}
}

func ExampleInstall() {
	// In a binary's main, before anything logs:
	Install(slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})))
	log.Printf("asynqmon: could not run task %q", "t1")
	// Output: {"level":"WARN","msg":"asynqmon: could not run task \"t1\"","component":"stdlog"}
}
