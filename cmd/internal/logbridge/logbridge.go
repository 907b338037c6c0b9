// Package logbridge sends the log lines of libraries that do not take a
// *slog.Logger (the standard library's log package, used by asynqmon and
// net/http; go-redis's internal logger) to the process's slog logger, so
// every line a binary writes is JSON (or its text handler's format), with
// e-mail addresses masked.
//
// Those loggers are process-wide: only a binary's main calls Install.
package logbridge

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/redis/go-redis/v9"
)

// Install points the standard log package and go-redis's logger at l. It
// changes process-wide state: call it once, from main.
func Install(l *slog.Logger) {
	log.SetFlags(0)
	log.SetOutput(Writer(l.With("component", "stdlog"), slog.LevelWarn))
	redis.SetLogger(NewRedisLogger(l.With("component", "redis"), time.Second))
}

// Writer is an io.Writer for a *log.Logger (log.SetOutput): each line it
// receives becomes one slog record at level, e-mail addresses masked.
func Writer(l *slog.Logger, level slog.Level) io.Writer { return writer{l: l, level: level} }

type writer struct {
	l     *slog.Logger
	level slog.Level
}

func (w writer) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			w.l.Log(context.Background(), w.level, payloads.MaskEmailsString(line))
		}
	}
	return len(p), nil
}

// RedisLogger is go-redis's logger interface onto slog. A Redis that is
// down makes go-redis log a failed dial per pool connection many times a
// second; RedisLogger writes at most one line per interval and counts the
// lines it dropped in the next one ("dropped").
type RedisLogger struct {
	l     *slog.Logger
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	last    time.Time
	dropped int
}

// NewRedisLogger logs to l at Warn, at most one line per every.
func NewRedisLogger(l *slog.Logger, every time.Duration) *RedisLogger {
	return &RedisLogger{l: l, every: every, now: time.Now}
}

// Printf implements go-redis's internal.Logging.
func (r *RedisLogger) Printf(_ context.Context, format string, v ...any) {
	now := r.now()
	r.mu.Lock()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.dropped++
		r.mu.Unlock()
		return
	}
	dropped := r.dropped
	r.last, r.dropped = now, 0
	r.mu.Unlock()
	msg := strings.TrimPrefix(payloads.MaskEmailsString(fmt.Sprintf(format, v...)), "redis: ")
	attrs := []any{}
	if dropped > 0 {
		attrs = append(attrs, "dropped", dropped)
	}
	r.l.Warn("redis: "+msg, attrs...)
}
