package flows_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// roundTrips counts what a go-redis client sends: one per command sent
// alone, one per pipeline.
type roundTrips struct{ n, cmds atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hello" { // a new pooled connection's setup
			return next(ctx, cmd)
		}
		r.n.Add(1)
		r.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() == "client" {
			// A new pooled connection's CLIENT SETINFO (after its HELLO):
			// the pool's doing, not the flow's.
			return next(ctx, cmds)
		}
		r.n.Add(1)
		r.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// The Redis round trips of a flow, measured: its Start, the advancement
// of a step with two dependents, of a step with none, and of the last
// step (the flow completes).
func TestRoundTripsPerStep(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	var store, client roundTrips
	e.rc.AddHook(&store)
	e.client.Redis().AddHook(&client)
	measure := func(what string, f func()) (int64, int64) {
		s0, c0 := store.n.Load(), client.n.Load()
		f()
		s, c := store.n.Load()-s0, client.n.Load()-c0
		t.Logf("%-40s store %d round trip(s), client %d round trip(s)", what, s, c)
		return s, c
	}
	mw := e.store.Middleware(e.client)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	var f *flows.Flow
	run := func(step string) {
		if err := mw.ProcessTask(ctx, stepTask(f.ID(), step)); err != nil {
			t.Fatal(err)
		}
	}
	// Warm up: scripts loaded, queues known to the client.
	f = build(t, release("esc-rtt-0"))
	if _, err := flows.Start(ctx, e.client, f); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"capture", "seller-email", "partner-webhook", "audit"} {
		run(s)
	}
	f = build(t, release("esc-rtt"))
	// Start: the start script and the index write on the client's
	// connection, then one enqueue per root step (capture, audit), in
	// parallel.
	_, c := measure("Start (2 root steps)", func() {
		if _, err := flows.Start(ctx, e.client, f); err != nil {
			t.Fatal(err)
		}
	})
	if c != 4 {
		t.Errorf("Start: got %d round trips, want 4 (script, indexes, 2 enqueues)", c)
	}
	// On one Redis the advancement script enqueues both dependents itself,
	// the partner webhook with its escrow's sequence.
	s, c := measure("advance capture (2 dependents)", func() { run("capture") })
	if s != 1 || c != 0 {
		t.Errorf("capture: got store %d, client %d; want 1 (the script, which enqueues the e-mail and the webhook) and 0", s, c)
	}
	s, c = measure("advance seller-email (no dependent)", func() { run("seller-email") })
	if s != 1 || c != 0 {
		t.Errorf("seller-email: got store %d, client %d; want 1 and 0", s, c)
	}
	run("partner-webhook")
	s, c = measure("advance audit (the flow completes)", func() { run("audit") })
	if s != 1 || c != 0 {
		t.Errorf("audit: got store %d, client %d; want 1 (the script, which updates the indexes and counter) and 0", s, c)
	}
}
