package escrowtest

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
)

// RedisOpt builds the Redis option the way the binaries do, from an
// environment (REDIS_URL, REDIS_CLUSTER_ADDRS, …).
func RedisOpt(t testing.TB, env map[string]string) asynq.RedisConnOpt {
	t.Helper()
	opt, err := tasks.RedisFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// WorkerConfig is what StartWorker needs; zero fields take the defaults
// noted.
type WorkerConfig struct {
	Redis       asynq.RedisConnOpt
	Adapters    *Adapters
	Enqueuer    handlers.Enqueuer      // the fan-out's client
	Concurrency int                    // 8
	FetchLoops  int                    // 2
	Middleware  []asynq.MiddlewareFunc // added to the ServeMux in order, after the flows'
	// Flows runs flows on the worker as cmd/server does: its Middleware
	// is the ServeMux's first and the worker tells it of dead-lettered
	// steps (worker.Config.Flows). Nil: a store on cfg.Redis that enqueues
	// with Enqueuer when that is a *tasks.Client, else with a client of
	// its own.
	Flows *flows.Store
}

// StartWorker starts the real worker (asynq servers, retry gate,
// dead-letter log in a temporary file, flows' middleware) with the real
// handlers over cfg.Adapters, shuts it down at cleanup and returns its
// dead-letter log.
func StartWorker(t testing.TB, cfg WorkerConfig) *deadletter.File {
	t.Helper()
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	if cfg.FetchLoops == 0 {
		cfg.FetchLoops = 2
	}
	dl, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dead-letters.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mux, err := handlers.NewServeMux(cfg.Adapters.Deps(cfg.Enqueuer, log))
	if err != nil {
		t.Fatal(err)
	}
	client, ok := cfg.Enqueuer.(*tasks.Client)
	if !ok {
		client = tasks.NewClient(cfg.Redis)
		t.Cleanup(func() { client.Close() })
	}
	if cfg.Flows == nil {
		cfg.Flows = flows.NewStore(client.Redis(), nil, flows.WithClient(client))
	}
	mux.Use(cfg.Flows.Middleware(client))
	for _, m := range cfg.Middleware {
		mux.Use(m)
	}
	w, err := worker.New(worker.Config{Redis: cfg.Redis, Concurrency: cfg.Concurrency, FetchLoops: cfg.FetchLoops,
		DeadLetters: dl, Logger: log, ShutdownTimeout: 2 * time.Second, Flows: cfg.Flows}, mux)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return dl
}
