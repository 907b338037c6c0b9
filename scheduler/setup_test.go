package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/scheduler"
	"github.com/hibiken/asynq"
)

// redisOpt is a private Redis for the test.
func redisOpt(t *testing.T) asynq.RedisConnOpt {
	t.Helper()
	opt, err := asynq.ParseRedisURI(peertest.Redis(t))
	if err != nil {
		t.Fatalf("parse Redis URL: %v", err)
	}
	return opt
}

// writeFile writes content to a file in a temp dir and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	return peertest.TempFile(t, "schedule.json", content)
}

// record is one captured log line.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

// logs captures every log line of one scheduler, debug included.
type logs struct {
	mu   sync.Mutex
	recs []record
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { panic("scheduler_test: WithAttrs not supported") }
func (l *logs) WithGroup(string) slog.Handler            { panic("scheduler_test: WithGroup not supported") }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]any{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve().Any()
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, rec)
	l.mu.Unlock()
	return nil
}

// with returns the records with message msg.
func (l *logs) with(msg string) []record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []record
	for _, r := range l.recs {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// text is every record as one string, to search for things never logged.
func (l *logs) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.recs {
		fmt.Fprintf(&b, "%s %s %v\n", r.level, r.msg, r.attrs)
	}
	return b.String()
}

// running is a scheduler running in the background.
type running struct {
	logs *logs
	stop func() // cancels Run and waits for it; idempotent
}

// start creates a scheduler from cfg (with a capturing logger) and runs it
// until stop or the end of the test.
func start(t *testing.T, cfg scheduler.Config) *running {
	t.Helper()
	l := &logs{}
	cfg.Logger = slog.New(l)
	s, err := scheduler.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &running{logs: l, stop: escrowtest.Start(t, "Run", 10*time.Second, s.Run).Stop}
}
