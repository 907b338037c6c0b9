package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/hibiken/asynq"
)

// waitErr is a partner's "not now" (a circuit, throttle or limit).
type waitErr struct{}

func (waitErr) Error() string            { return "partner p-1 throttled" }
func (waitErr) WaitUntil() (t time.Time) { return t }

// Every outcome is one line at its level, with the task attributes and the
// error (addresses masked); a line below the logger's level is not written.
func TestLoggingWritesOneLinePerOutcomeAtItsLevel(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		min       slog.Level
		wantLevel string // "" for no line
		wantMsg   string
		wantErr   string
	}{
		{"done", nil, slog.LevelInfo, "INFO", "job done", ""},
		{"done below the level", nil, slog.LevelWarn, "", "", ""},
		{"failed", errors.New("smtp: 451 for buyer@example.com"), slog.LevelInfo, "WARN", "job failed", "smtp: 451 for b***@example.com"},
		{"failed permanently", fmt.Errorf("bad payload: %w", asynq.SkipRetry), slog.LevelInfo, "ERROR", "job failed permanently", "bad payload: skip retry for the task"},
		{"failed permanently at error level", fmt.Errorf("bad payload: %w", asynq.SkipRetry), slog.LevelError, "ERROR", "job failed permanently", "bad payload: skip retry for the task"},
		{"waits", waitErr{}, slog.LevelDebug, "DEBUG", "job waits", "partner p-1 throttled"},
		{"waits at info", waitErr{}, slog.LevelInfo, "", "", ""},
	} {
		var out bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: tc.min}))
		h := handlers.Logging(log)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return tc.err }))
		if err := h.ProcessTask(context.Background(), asynq.NewTask("send_release_email", nil)); err != tc.err {
			t.Errorf("%s: returned %v, want the handler's %v", tc.name, err, tc.err)
		}
		if tc.wantLevel == "" {
			if out.Len() != 0 {
				t.Errorf("%s: got %q, want no line", tc.name, out.String())
			}
			continue
		}
		if n := strings.Count(out.String(), "\n"); n != 1 {
			t.Errorf("%s: got %d lines, want 1: %q", tc.name, n, out.String())
			continue
		}
		var line map[string]any
		if err := json.Unmarshal(out.Bytes(), &line); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if line["level"] != tc.wantLevel || line["msg"] != tc.wantMsg {
			t.Errorf("%s: got %v %q, want %s %q", tc.name, line["level"], line["msg"], tc.wantLevel, tc.wantMsg)
		}
		for _, k := range []string{"task_type", "task_id", "queue", "attempt", "duration_ms"} {
			if _, ok := line[k]; !ok {
				t.Errorf("%s: got no %s in %v", tc.name, k, line)
			}
		}
		if got, _ := line["error"].(string); got != tc.wantErr {
			t.Errorf("%s: got error %q, want %q", tc.name, got, tc.wantErr)
		}
	}
}
