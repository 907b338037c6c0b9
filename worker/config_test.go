package worker

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

func TestNewNamesAMissingDependency(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"} // never dialled by New
	dl := deadLetters(t)
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no redis", Config{DeadLetters: dl, Logger: log}, "no Redis connection"},
		{"no dead letters", Config{Redis: opt, Logger: log}, "no dead-letter log"},
		{"no logger", Config{Redis: opt, DeadLetters: dl}, "no logger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, asynq.NewServeMux())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestNewFillsUnsetNumbers: zero and negative numbers take their defaults,
// set ones are kept, and there are never more fetch loops than slots.
func TestNewFillsUnsetNumbers(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}
	for _, tc := range []struct {
		name string
		in   Config
		want Config
	}{
		{"zero", Config{}, Config{Concurrency: DefaultConcurrency, FetchLoops: min(DefaultFetchLoops, DefaultConcurrency),
			PollInterval: DefaultPollInterval, FallbackPoll: DefaultFallbackPoll, ShutdownTimeout: DefaultShutdownTimeout}},
		{"negative", Config{Concurrency: -1, FetchLoops: -1, PollInterval: -time.Second, FallbackPoll: -1, ShutdownTimeout: -1},
			Config{Concurrency: DefaultConcurrency, FetchLoops: min(DefaultFetchLoops, DefaultConcurrency),
				PollInterval: DefaultPollInterval, FallbackPoll: DefaultFallbackPoll, ShutdownTimeout: DefaultShutdownTimeout}},
		{"set", Config{Concurrency: 7, FetchLoops: 3, PollInterval: time.Millisecond, FallbackPoll: time.Second, ShutdownTimeout: time.Minute},
			Config{Concurrency: 7, FetchLoops: 3, PollInterval: time.Millisecond, FallbackPoll: time.Second, ShutdownTimeout: time.Minute}},
		{"more loops than slots", Config{Concurrency: 2, FetchLoops: 5}, Config{Concurrency: 2, FetchLoops: 2,
			PollInterval: DefaultPollInterval, FallbackPoll: DefaultFallbackPoll, ShutdownTimeout: DefaultShutdownTimeout}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Redis = opt
			w := newWorker(t, tc.in, asynq.NewServeMux())
			defer w.rc.Close()
			got := w.cfg
			if got.Concurrency != tc.want.Concurrency || got.FetchLoops != tc.want.FetchLoops ||
				got.PollInterval != tc.want.PollInterval || got.FallbackPoll != tc.want.FallbackPoll ||
				got.ShutdownTimeout != tc.want.ShutdownTimeout {
				t.Errorf("got concurrency %d, fetch loops %d, poll %v, fallback %v, shutdown %v; want %d, %d, %v, %v, %v",
					got.Concurrency, got.FetchLoops, got.PollInterval, got.FallbackPoll, got.ShutdownTimeout,
					tc.want.Concurrency, tc.want.FetchLoops, tc.want.PollInterval, tc.want.FallbackPoll, tc.want.ShutdownTimeout)
			}
			if len(got.Queues) == 0 {
				t.Error("got no queues, want the default ones")
			}
		})
	}
}
