package worker

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// redisOpt is the Redis option the binaries build from REDIS_URL=url.
func redisOpt(t *testing.T, url string) asynq.RedisConnOpt {
	t.Helper()
	opt, err := tasks.RedisFromEnv(func(k string) string { return map[string]string{"REDIS_URL": url}[k] })
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// redisClient is a go-redis client of url, closed at cleanup.
func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	t.Cleanup(func() { rc.Close() })
	return rc
}

// deadLetters is a dead-letter file in the test's temp dir, closed at
// cleanup.
func deadLetters(t *testing.T) *deadletter.File {
	t.Helper()
	dl, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dead-letters.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	return dl
}

// newWorker is New for a test, not started: a nil cfg.DeadLetters is a
// file of the test's own, a nil cfg.Logger discards.
func newWorker(t *testing.T, cfg Config, h asynq.Handler) *Worker {
	t.Helper()
	if cfg.DeadLetters == nil {
		cfg.DeadLetters = deadLetters(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// start starts w and shuts it down at cleanup (Shutdown may also be
// called before).
func start(t *testing.T, w *Worker) *Worker {
	t.Helper()
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return w
}

// waitFor waits up to 20 s for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for " + what)
		}
	}
}
