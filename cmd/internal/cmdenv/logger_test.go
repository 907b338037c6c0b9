package cmdenv

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsTerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0) // a pseudo-terminal
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v (the test needs a pseudo-terminal device: mount devpts)", err)
	}
	defer ptmx.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	r, pipe, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer pipe.Close()
	for _, tc := range []struct {
		name string
		w    io.Writer
		want bool
	}{
		{"pseudo-terminal", ptmx, true},
		{"null device", null, false},
		{"regular file", file, false},
		{"pipe", pipe, false},
		{"buffer", &bytes.Buffer{}, false},
		{"nil file", (*os.File)(nil), false},
	} {
		if got := IsTerminal(tc.w); got != tc.want {
			t.Errorf("%s: got IsTerminal %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLoggerIsTextOnATerminalAndJSONElsewhere(t *testing.T) {
	for _, tc := range []struct {
		terminal bool
		level    string
		wantJSON bool
	}{
		{false, "", true},
		{true, "", false},
		{false, "debug", true},
		{true, "warn", false},
	} {
		var buf bytes.Buffer
		log := newLogger(&buf, tc.level, tc.terminal)
		log.Debug("dbg", "task_type", "send_release_email")
		log.Warn("job failed", "task_type", "send_release_email", "attempt", 2)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		wantLines := 1
		if tc.level == "debug" {
			wantLines = 2
		}
		if len(lines) != wantLines {
			t.Errorf("terminal %v level %q: got %d lines %q, want %d", tc.terminal, tc.level, len(lines), lines, wantLines)
			continue
		}
		last := lines[len(lines)-1]
		var m map[string]any
		isJSON := json.Unmarshal([]byte(last), &m) == nil
		if isJSON != tc.wantJSON {
			t.Errorf("terminal %v: got line %q (JSON %v), want JSON %v", tc.terminal, last, isJSON, tc.wantJSON)
		}
		if !tc.wantJSON && !strings.Contains(last, `level=WARN msg="job failed" task_type=send_release_email attempt=2`) {
			t.Errorf("terminal: got %q, want a text line with level, msg and attributes", last)
		}
	}
}

func TestNewLoggerWritesJSONToABuffer(t *testing.T) {
	var buf bytes.Buffer
	NewLogger(&buf, "info").Info("hello", "queue", "default")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["msg"] != "hello" || m["queue"] != "default" {
		t.Errorf("got %q (%v), want one JSON line with msg and queue", buf.String(), err)
	}
}

func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want slog.Level
	}{
		{"", slog.LevelInfo}, {"debug", slog.LevelDebug}, {"WARN", slog.LevelWarn}, {" error ", slog.LevelError}, {"loud", slog.LevelInfo},
	} {
		if got := ParseLevel(tc.in); got != tc.want {
			t.Errorf("ParseLevel(%q): got %v, want %v", tc.in, got, tc.want)
		}
	}
}
