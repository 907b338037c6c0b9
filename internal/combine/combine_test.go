package combine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/combine"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/redis/go-redis/v9"
)

// gate is a hook inside the combiner that holds the first command it sees
// until release is closed, and counts the round trips that pass it.
type gate struct {
	held    atomic.Bool
	release chan struct{}
	singles atomic.Int64
	pipes   atomic.Int64
	piped   atomic.Int64 // commands sent in pipelines
}

func (g *gate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if combine.AsynqCommand(cmd.Args()) {
			g.singles.Add(1)
			if g.held.CompareAndSwap(false, true) {
				<-g.release
			}
		}
		return next(ctx, cmd)
	}
}

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if combine.AsynqCommand(cmds[0].Args()) { // not a connection's set-up
			g.pipes.Add(1)
			g.piped.Add(int64(len(cmds)))
		}
		return next(ctx, cmds)
	}
}

// combined is a client of opt with a Hook of one flight for asynq's
// commands and a gate inside it.
func combined(t *testing.T, opt *redis.Options) (*redis.Client, *combine.Hook, *gate) {
	t.Helper()
	rc := redis.NewClient(opt)
	t.Cleanup(func() { rc.Close() })
	c := combine.New(rc, 1, combine.AsynqCommand)
	g := &gate{release: make(chan struct{})}
	rc.AddHook(c)
	rc.AddHook(g)
	return rc, c, g
}

// queued waits until n commands wait in c's line.
func queued(t *testing.T, c *combine.Hook, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d commands in line", n), func() bool { return c.Waiting() == n })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for " + what)
		}
	}
}

var (
	incrScript = redis.NewScript(`return redis.call("INCRBY", KEYS[1], ARGV[1])`)
	failScript = redis.NewScript(`return redis.error_reply("REFUSED " .. ARGV[1])`)
	nilScript  = redis.NewScript(`return false`)
)

// Commands issued while a round trip is in flight share the next one, and
// each gets its own answer: a value, a script's error, or redis.Nil.
func TestCombinerSendsWaitingCommandsInOnePipelineWithTheirOwnAnswers(t *testing.T) {
	opt, err := redis.ParseURL(peertest.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rc, c, g := combined(t, opt)
	ctx := context.Background()
	// asynq's scripts run with EVALSHA; load them so none falls back to EVAL.
	for _, s := range []*redis.Script{incrScript, failScript, nilScript} {
		if err := s.Load(ctx, rc).Err(); err != nil {
			t.Fatal(err)
		}
	}
	first := make(chan error, 1)
	go func() { first <- incrScript.Run(ctx, rc, []string{"asynq:{t}:first"}, 1).Err() }()
	waitFor(t, "the first command to be held", g.held.Load)

	const n = 30
	type answer struct {
		v   int64
		err error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("asynq:{t}:n:%d", i)
			switch i % 3 {
			case 0:
				answers[i].v, answers[i].err = incrScript.Run(ctx, rc, []string{key}, i).Int64()
			case 1:
				answers[i].err = failScript.Run(ctx, rc, []string{key}, i).Err()
			case 2:
				answers[i].err = nilScript.Run(ctx, rc, []string{key}).Err()
			}
		})
	}
	queued(t, c, n)
	// A command the combiner does not batch does not wait in line.
	if err := rc.Set(ctx, "asynq:{t}:plain", "1", time.Minute).Err(); err != nil {
		t.Fatalf("plain SET while a round trip is in flight: got %v, want nil", err)
	}
	close(g.release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first command: got %v, want nil", err)
	}
	for i, a := range answers {
		switch i % 3 {
		case 0:
			if a.err != nil || a.v != int64(i) {
				t.Errorf("command %d (INCRBY %d): got %d, %v; want %d, nil", i, i, a.v, a.err, i)
			}
		case 1:
			if want := fmt.Sprintf("REFUSED %d", i); a.err == nil || a.err.Error() != want {
				t.Errorf("command %d (error reply): got %v, want %q", i, a.err, want)
			}
		case 2:
			if a.err != redis.Nil {
				t.Errorf("command %d (nil reply): got %v, want redis.Nil", i, a.err)
			}
		}
	}
	if got := g.pipes.Load(); got != 1 {
		t.Errorf("pipelines: got %d, want 1 (every waiting command in one)", got)
	}
	if got := g.piped.Load(); got != n {
		t.Errorf("commands in the pipeline: got %d, want %d", got, n)
	}
	if got := g.singles.Load(); got != 1 {
		t.Errorf("combinable commands sent alone: got %d, want 1 (the first)", got)
	}
}

// When the shared round trip fails (Redis unreachable), every command in
// it gets the failure, none a zero answer without an error.
func TestCombinerFailsEveryCommandOfAFailedPipeline(t *testing.T) {
	rc, c, g := combined(t, &redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- rc.EvalSha(ctx, "0123", []string{"asynq:{t}:first"}).Err() }()
	waitFor(t, "the first command to be held", g.held.Load)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = rc.HSet(ctx, fmt.Sprintf("asynq:{t}:t:%d", i), "result", "x").Err()
		})
	}
	queued(t, c, n)
	close(g.release)
	wg.Wait()
	if err := <-first; err == nil {
		t.Error("first command: got nil, want the connection error")
	}
	for i, err := range errs {
		var rerr redis.Error
		if err == nil || errors.As(err, &rerr) {
			t.Errorf("command %d: got %v, want the connection error", i, err)
		}
	}
}

func TestAsynqCommandTakesOnlyAsynqScriptsAndResultWrites(t *testing.T) {
	for _, c := range []struct {
		name string
		args []any
		want bool
	}{
		{"asynq script", []any{"evalsha", "sha", 4, "asynq:{low}:pending", "asynq:{low}:paused", "asynq:{low}:active", "asynq:{low}:lease", int64(1)}, true},
		{"asynq script after NOSCRIPT", []any{"eval", "return 1", 1, "asynq:{low}:active", "id"}, true},
		{"result write", []any{"hset", "asynq:{low}:t:id", "result", []byte("{}")}, true},
		{"script without keys", []any{"evalsha", "sha", 0}, false},
		{"script on other keys", []any{"evalsha", "sha", 1, "escrowjobs:retry-at:x"}, false},
		{"hset of other keys", []any{"hset", "flows:{f}:x", "a", "b"}, false},
		{"connection set-up", []any{"hello", 3}, false},
		{"watch", []any{"watch", "asynq:{low}:t:id"}, false},
		{"blocking pop", []any{"brpoplpush", "asynq:{low}:pending", "asynq:{low}:active", 0}, false},
		{"ping", []any{"ping"}, false},
	} {
		if got := combine.AsynqCommand(c.args); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestScriptTakesEveryScriptWithKeys(t *testing.T) {
	for _, c := range []struct {
		name string
		args []any
		want bool
	}{
		{"asynq script", []any{"evalsha", "sha", 2, "asynq:{low}:t:id", "asynq:{low}:pending", "msg"}, true},
		{"script on other keys", []any{"evalsha", "sha", 1, "escrowjobs:flow:{f}", "complete"}, true},
		{"script after NOSCRIPT", []any{"eval", "return 1", 1, "k"}, true},
		{"script without keys", []any{"evalsha", "sha", 0}, false},
		{"hset", []any{"hset", "asynq:{low}:t:id", "result", "x"}, false},
		{"wait", []any{"wait", 1, 100}, false},
		{"watch", []any{"watch", "k"}, false},
		{"ping", []any{"ping"}, false},
	} {
		if got := combine.Script(c.args); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// A shared pipeline ends at the earliest deadline among its commands: a
// Redis that takes the commands and never answers costs no caller more
// than its own deadline.
func TestSharedPipelineEndsAtTheEarliestDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts, reads, never answers
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, conn) }()
		}
	}()
	rc, c, g := combined(t, &redis.Options{Addr: ln.Addr().String(), MaxRetries: -1, Protocol: 2,
		ReadTimeout: 20 * time.Second, ContextTimeoutEnabled: true, DisableIdentity: true})
	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		first <- rc.EvalSha(ctx, "0123", []string{"asynq:{t}:first"}).Err()
	}()
	waitFor(t, "the first command to be held", g.held.Load)
	deadlines := []time.Duration{300 * time.Millisecond, 5 * time.Minute}
	errs := make([]error, len(deadlines))
	took := make([]time.Duration, len(deadlines))
	var wg sync.WaitGroup
	for i, d := range deadlines {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			start := time.Now()
			errs[i] = rc.EvalSha(ctx, "0123", []string{fmt.Sprintf("asynq:{t}:%d", i)}).Err()
			took[i] = time.Since(start)
		})
	}
	queued(t, c, len(deadlines))
	close(g.release)
	wg.Wait()
	if err := <-first; err == nil {
		t.Error("first command: got nil, want its deadline's error")
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("command %d: got nil, want the shared pipeline's deadline error", i)
		}
		// The pipeline gives up at the earliest deadline of its line (300
		// ms): no command waits for the later one (5 min) or for the
		// client's read timeout (20 s).
		if took[i] > 10*time.Second {
			t.Errorf("command %d: returned after %s, want at the line's earliest deadline", i, took[i])
		}
	}
}
