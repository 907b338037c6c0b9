package flows_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { os.Exit(peertest.RunMain(m)) }

// env is one test's Redis, client, inspector, flow store and recording
// adapters.
type env struct {
	opt      asynq.RedisConnOpt
	rc       redis.UniversalClient
	client   *tasks.Client
	insp     *tasks.Inspector
	store    *flows.Store
	adapters *escrowtest.Adapters
	dl       *deadletter.File
}

// setup gives a test a Redis of its own (env: REDIS_URL or
// REDIS_CLUSTER_ADDRS; nil: a private redis-server).
func setup(t *testing.T, redisEnv map[string]string, opts ...flows.Option) *env {
	t.Helper()
	if redisEnv == nil {
		redisEnv = map[string]string{"REDIS_URL": peertest.Redis(t)}
	}
	opt := escrowtest.RedisOpt(t, redisEnv)
	if os.Getenv("FLOWS_TEST_LOG") != "" {
		opts = append(opts, flows.Logger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	}
	e := &env{opt: opt, client: tasks.NewClient(opt), insp: tasks.NewInspector(opt), adapters: escrowtest.NewAdapters()}
	e.rc = opt.MakeRedisClient().(redis.UniversalClient)
	e.store = flows.NewStore(e.rc, e.insp, append([]flows.Option{flows.WithClient(e.client)}, opts...)...)
	dl, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dead-letters.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	e.dl = dl
	t.Cleanup(func() { e.client.Close(); e.insp.Close(); e.rc.Close(); dl.Close() })
	return e
}

// startWorker starts a real worker (the real handlers over the recording
// adapters, the flow middleware, the store told of dead letters), shut
// down at cleanup.
func (e *env) startWorker(t *testing.T, concurrency int) *worker.Worker {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("FLOWS_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	mux, err := handlers.NewServeMux(e.adapters.Deps(e.client, log))
	if err != nil {
		t.Fatal(err)
	}
	mux.Use(e.store.Middleware(e.client))
	w, err := worker.New(worker.Config{Redis: e.opt, Concurrency: concurrency, FetchLoops: 1, DeadLetters: e.dl, Flows: e.store,
		Logger: log, ShutdownTimeout: 2 * time.Second}, mux)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return w
}

// awaitFlow waits up to 20 s for flow id to be in state want.
func (e *env) awaitFlow(t *testing.T, id, want string) flows.View {
	t.Helper()
	return e.awaitFlowWithin(t, id, want, 20*time.Second)
}

// awaitFlowWithin waits up to d for flow id to be in state want.
func (e *env) awaitFlowWithin(t *testing.T, id, want string, d time.Duration) flows.View {
	t.Helper()
	var v flows.View
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("flow %s at the end: %+v", id, v)
		}
	})
	escrowtest.Eventually(t, "flow "+id+" "+want, d, func() bool {
		var err error
		v, err = e.store.Status(context.Background(), id)
		return err == nil && v.State == want
	})
	return v
}

// step is the step name of v.
func step(t *testing.T, v flows.View, name string) flows.StepView {
	t.Helper()
	for _, s := range v.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("flow %s has no step %s", v.ID, name)
	return flows.StepView{}
}

func build(t *testing.T, b *flows.Builder) *flows.Flow {
	t.Helper()
	f, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return f
}
