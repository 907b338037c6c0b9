package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest/sample"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestMain doubles as a worker process for the multi-process tests: with
// wakeChildEnv set, the test binary runs runChild instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv(wakeChildEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

const (
	wakeChildEnv = "ESCROWJOBS_WAKE_TEST_CHILD" // the child's name
	ranList      = "wake-test:ran"              // "<job ID> <child>" per handler start
	// noPoll is a fallback poll no test waits out: a job that runs under
	// it was delivered by a wake-up (or by the forwarder's local wake).
	noPoll = 10 * time.Minute
	// deliver bounds every wait for a job in these tests. It is not a
	// latency claim (that is in cmd/loadgen): only far below noPoll and far
	// above any poll interval a test relies on.
	deliver = 60 * time.Second
)

// runChild is one worker process: it records each job it starts in Redis,
// counts the wake-ups it hears, says "ready" once it hears them, and on
// SIGTERM shuts down and says "stopped".
func runChild() int {
	name := os.Getenv(wakeChildEnv)
	fallback, err := time.ParseDuration(os.Getenv("FALLBACK_POLL"))
	if err != nil {
		fmt.Println("FALLBACK_POLL:", err)
		return 2
	}
	opt, err := tasks.RedisFromEnv(os.Getenv)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	rc := opt.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	dl, err := deadletter.OpenFile(filepath.Join(os.Getenv("DIR"), name+".jsonl"))
	if err != nil {
		fmt.Println(err)
		return 2
	}
	ctx := context.Background()
	h := asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		return rc.RPush(ctx, ranList, id+" "+name).Err()
	})
	w, err := New(Config{Redis: opt, Concurrency: 4, FetchLoops: 2, FallbackPoll: fallback, ShutdownTimeout: 2 * time.Second,
		DeadLetters: dl, Logger: slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelWarn}))}, h)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	w.sub.heard = func() { rc.Incr(ctx, "wake-test:heard:"+name) }
	if os.Getenv("DROP_WAKEUPS") == "true" {
		w.sub.drop = func(string) bool { return true }
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	if err := w.Start(); err != nil {
		fmt.Println(err)
		return 2
	}
	for !w.idle.hearing() {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("ready")
	<-sig
	w.Shutdown()
	fmt.Println("stopped")
	return 0
}

// Three worker processes hear every wake-up; each job, enqueued while all
// are idle, runs in exactly one of them. With every wake-up lost on
// purpose, the fallback poll still runs every job, once. In both cases a
// process whose fetch loops wait for a wake-up stops promptly on SIGTERM
// (with a 10-minute fallback poll it would not if the wait held).
func TestWakeUpsAcrossWorkerProcesses(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		drop      bool
		fallback  time.Duration
		wantHeard int
	}{
		{"wake-ups heard, no poll to fall back on", false, noPoll, 12},
		{"every wake-up lost, 1 s fallback poll", true, time.Second, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			url := peertest.Redis(t)
			opt := redisOpt(t, url)
			rc := redisClient(t, url)
			dir := t.TempDir()
			names := []string{"w1", "w2", "w3"}
			var procs []*peertest.Process
			for _, n := range names {
				p := peertest.Start(t, exe, []string{wakeChildEnv + "=" + n, "REDIS_URL=" + url, "FALLBACK_POLL=" + c.fallback.String(),
					"DROP_WAKEUPS=" + strconv.FormatBool(c.drop), "DIR=" + dir}, "-test.run=^$")
				procs = append(procs, p)
			}
			for i, p := range procs {
				if !p.WaitOutput("ready", deliver) {
					t.Fatalf("worker process %s never heard its wake-up channels; output:\n%s", names[i], p.Output())
				}
			}
			client := tasks.NewClient(opt)
			defer client.Close()
			ctx := context.Background()
			var ids []string
			for i := range 12 { // every type, all three queues
				id := enqueue(t, client, build(t, i, fmt.Sprintf("wake-%d", i)))
				ids = append(ids, id)
				waitLen(t, rc, ranList, int64(i+1), fmt.Sprintf("job %d (%s)", i, id))
			}
			// Nothing else arrives: no job ran twice.
			time.Sleep(500 * time.Millisecond)
			ran, err := rc.LRange(ctx, ranList, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			byProc := map[string]int{}
			var got []string
			for _, r := range ran {
				id, proc, _ := strings.Cut(r, " ")
				got = append(got, id)
				byProc[proc]++
			}
			if !slices.Equal(got, ids) {
				t.Errorf("jobs run, in order: got %v, want %v (each once)", got, ids)
			}
			t.Logf("jobs per process: %v", byProc)
			for _, n := range names {
				key := "wake-test:heard:" + n
				if c.wantHeard > 0 {
					waitCount(t, rc, key, int64(c.wantHeard))
				}
				// One more per script the Redis had not cached yet: the
				// publish rides along with the EVALSHA that fails NOSCRIPT
				// and again with the EVAL that follows.
				got, _ := rc.Get(ctx, key).Int64()
				if c.wantHeard == 0 && got != 0 || got < int64(c.wantHeard) || got > int64(c.wantHeard)+2 {
					t.Errorf("%s heard %d wake-ups, want %d (+ up to 2 for uncached scripts)", n, got, c.wantHeard)
				}
			}
			for i, p := range procs {
				p.Signal(syscall.SIGTERM)
				// ShutdownTimeout is 2 s; a loop held until the fallback poll would take 10 min.
				if _, exited := p.Wait(2*time.Second + 30*time.Second); !exited {
					t.Errorf("worker process %s did not stop after SIGTERM; output:\n%s", names[i], p.Output())
				} else if !strings.Contains(p.Output(), "stopped") {
					t.Errorf("worker process %s exited without shutting down; output:\n%s", names[i], p.Output())
				}
			}
		})
	}
}

// waitLen waits until list holds n entries.
func waitLen(t *testing.T, rc redis.UniversalClient, list string, n int64, what string) {
	t.Helper()
	for deadline := time.Now().Add(deliver); ; time.Sleep(2 * time.Millisecond) {
		got, err := rc.LLen(context.Background(), list).Result()
		if err == nil && got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not run within %s (got %d of %d runs)", what, deliver, got, n)
		}
	}
}

// waitCount waits until the counter at key reaches n.
func waitCount(t *testing.T, rc redis.UniversalClient, key string, n int64) {
	t.Helper()
	for deadline := time.Now().Add(deliver); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got, _ := rc.Get(context.Background(), key).Int64(); got >= n {
			return
		}
	}
}

// recorder is an in-process handler: it notes each start, and fails the
// first attempt of the job failOnce.
type recorder struct {
	mu       sync.Mutex
	ran      []string
	failOnce string
	failed   bool
}

func (r *recorder) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ran = append(r.ran, id)
	if id == r.failOnce && !r.failed {
		r.failed = true
		return fmt.Errorf("peer unavailable, try again")
	}
	return nil
}

func (r *recorder) runs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ran)
}

func (r *recorder) waitRuns(t *testing.T, n int, what string) {
	t.Helper()
	for deadline := time.Now().Add(deliver); len(r.runs()) < n; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not run within %s; runs so far: %v", what, deliver, r.runs())
		}
	}
}

// checkRuns fails the test unless the jobs started so far are want, in
// order.
func (r *recorder) checkRuns(t *testing.T, want []string) {
	t.Helper()
	if got := r.runs(); !slices.Equal(got, want) {
		t.Errorf("runs, in order: got %v, want %v", got, want)
	}
}

// build is the job of sample payload i (see sample.Payload) with opts.
func build(t *testing.T, i int, seq string, opts ...tasks.Option) *tasks.Task {
	t.Helper()
	task, err := tasks.New(sample.Payload(i, seq), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// enqueue enqueues task and returns its job ID.
func enqueue(t *testing.T, client *tasks.Client, task *tasks.Task) string {
	t.Helper()
	id, err := client.Enqueue(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// startWorker runs an in-process worker on opt whose loops wait for
// wake-ups with fallback poll; drop loses every wake-up. It returns once
// the worker hears its channels.
func startWorker(t *testing.T, opt asynq.RedisConnOpt, fallback time.Duration, drop bool, h asynq.Handler, queues ...string) (*Worker, *atomic.Int64) {
	t.Helper()
	cfg := Config{Redis: opt, Concurrency: 4, FetchLoops: 2, FallbackPoll: fallback, ShutdownTimeout: 2 * time.Second}
	if len(queues) > 0 {
		cfg.Queues = map[string]int{}
		for _, q := range queues {
			cfg.Queues[q] = 1
		}
	}
	w := newWorker(t, cfg, h)
	heard := &atomic.Int64{}
	w.sub.heard = func() { heard.Add(1) }
	if drop {
		w.sub.drop = func(string) bool { return true }
	}
	start(t, w)
	for deadline := time.Now().Add(deliver); !w.idle.hearing(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker never heard its wake-up channels")
		}
	}
	return w, heard
}

// On a single Redis, through Sentinel and on a Cluster (sharded pub/sub,
// queues on different nodes), with no fallback poll to rely on: jobs of
// all three queues enqueued while the worker is idle run once each; a job
// scheduled 1 s ahead runs (announced with its due second, moved by the
// forwarder, which wakes the loops); a failed job's retry runs (the
// forwarder's gate knows it is due). Shutdown with loops waiting for a
// wake-up is prompt.
func TestWakeUpOnEveryTopology(t *testing.T) {
	cases := []struct {
		name string
		env  func(t *testing.T) map[string]string
	}{
		{"single Redis", func(t *testing.T) map[string]string { return map[string]string{"REDIS_URL": peertest.Redis(t)} }},
		{"Sentinel", func(t *testing.T) map[string]string {
			return map[string]string{"REDIS_URL": peertest.StartSentinel(t).URL()}
		}},
		{"Cluster", func(t *testing.T) map[string]string {
			return map[string]string{"REDIS_CLUSTER_ADDRS": peertest.StartCluster(t).Env()}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := c.env(t)
			opt, err := tasks.RedisFromEnv(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{failOnce: build(t, 4, "topo-4").ID}
			w, heard := startWorker(t, opt, noPoll, false, rec)
			client := tasks.NewClient(opt)
			defer client.Close()
			var want []string
			for i := range 9 {
				id := enqueue(t, client, build(t, i, fmt.Sprintf("topo-%d", i)))
				want = append(want, id)
				if id == rec.failOnce { // the retry, about 2 s later
					want = append(want, id)
					rec.waitRuns(t, len(want)-1, "job "+id)
				}
				rec.waitRuns(t, len(want), "job "+id)
			}
			id := enqueue(t, client, build(t, 9, "topo-scheduled", tasks.ProcessIn(time.Second)))
			want = append(want, id)
			rec.waitRuns(t, len(want), "scheduled job "+id)
			time.Sleep(300 * time.Millisecond)
			rec.checkRuns(t, want)
			if got := heard.Load(); got < 10 {
				t.Errorf("wake-ups heard: got %d, want at least 10 (one per enqueue)", got)
			}
			shutdownIsPrompt(t, w)
		})
	}
}

// shutdownIsPrompt checks that Shutdown returns within ShutdownTimeout
// plus a margin while the worker's loops wait for a wake-up (under a
// 10-minute fallback poll): the wait is released, not sat out.
func shutdownIsPrompt(t *testing.T, w *Worker) {
	t.Helper()
	done := make(chan struct{})
	go func() { w.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.ShutdownTimeout + 30*time.Second):
		t.Fatalf("Shutdown did not return within %s with idle loops waiting for a wake-up", w.cfg.ShutdownTimeout+30*time.Second)
	}
}

// Every wake-up lost on purpose: a pending job, a job scheduled 1 s ahead
// and a retry still run, once each, through the fallback poll (1 s) and
// the forwarder's own look every delayedPoll.
func TestLostWakeUpsStillRunEveryJob(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t, peertest.Redis(t))
	pending := build(t, 4, "lost-pending")
	rec := &recorder{failOnce: pending.ID}
	w, heard := startWorker(t, opt, time.Second, true, rec)
	client := tasks.NewClient(opt)
	defer client.Close()
	enqueue(t, client, pending)
	rec.waitRuns(t, 2, "pending job and its retry")
	sched := enqueue(t, client, build(t, 8, "lost-scheduled", tasks.ProcessIn(time.Second)))
	rec.waitRuns(t, 3, "scheduled job")
	time.Sleep(300 * time.Millisecond)
	rec.checkRuns(t, []string{pending.ID, pending.ID, sched})
	if got := heard.Load(); got != 0 {
		t.Errorf("wake-ups heard: got %d, want 0 (all dropped)", got)
	}
	shutdownIsPrompt(t, w)
}

func TestForwardedSetRecognisesOnlyAsynqForward(t *testing.T) {
	cases := []struct {
		name                 string
		args                 []any
		wantSet, wantPending string
	}{
		{"forward retry", []any{"evalsha", "sha", 2, "asynq:{default}:retry", "asynq:{default}:pending", int64(1), "asynq:{default}:t:", int64(2), "asynq:{default}:g:"},
			"asynq:{default}:retry", "asynq:{default}:pending"},
		{"forward scheduled after NOSCRIPT", []any{"eval", "src", 2, "asynq:{a b}:scheduled", "asynq:{a b}:pending", int64(1), "p", int64(2), "g"},
			"asynq:{a b}:scheduled", "asynq:{a b}:pending"},
		{"enqueue", []any{"evalsha", "sha", 2, "asynq:{low}:t:id", "asynq:{low}:pending", "msg", "id", int64(1)}, "", ""},
		{"schedule", []any{"evalsha", "sha", 2, "asynq:{low}:t:id", "asynq:{low}:scheduled", "msg", int64(1), "id"}, "", ""},
		{"run all scheduled (inspector)", []any{"evalsha", "sha", 2, "asynq:{low}:scheduled", "asynq:{low}:pending", "asynq:{low}:t:", "asynq:{low}:g:"}, "", ""},
		{"dequeue", []any{"evalsha", "sha", 4, "asynq:{low}:pending", "asynq:{low}:paused", "asynq:{low}:active", "asynq:{low}:lease", int64(1), "asynq:{low}:t:"}, "", ""},
		{"another queue's set", []any{"evalsha", "sha", 2, "asynq:{a}:retry", "asynq:{b}:pending", 1, 2, 3, 4}, "", ""},
		{"another queue's scheduled set", []any{"evalsha", "sha", 2, "asynq:{a}:scheduled", "asynq:{b}:pending", 1, 2, 3, 4}, "", ""},
		{"a queue's archive", []any{"evalsha", "sha", 2, "asynq:{a}:archived", "asynq:{a}:pending", 1, 2, 3, 4}, "", ""},
		{"plain command", []any{"zrangebyscore", "asynq:{low}:retry", "-inf", "1", "limit", 0, 100, "x", "y"}, "", ""},
	}
	for _, c := range cases {
		set, pending, ok := forwardedSet(c.args)
		if set != c.wantSet || pending != c.wantPending || ok != (c.wantSet != "") {
			t.Errorf("%s: got (%q, %q, %v), want (%q, %q)", c.name, set, pending, ok, c.wantSet, c.wantPending)
		}
	}
}

// A fetch loop waits for a wake-up inside asynq's dequeue call, after
// asynq has computed the lease (30 s) of the job it may fetch. After a
// long idle (here 40 s, with no fallback poll) the job must still get a
// live lease: it runs once, to completion (6 s, past asynq's next
// heartbeat, which cancels a job whose lease has expired), not cancelled
// and retried.
func TestJobAfterALongIdleHasALiveLease(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t, peertest.Redis(t))
	var mu sync.Mutex
	var results []error
	h := asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		select {
		case <-ctx.Done():
		case <-time.After(6 * time.Second): // past asynq's next heartbeat, which checks leases
		}
		mu.Lock()
		results = append(results, ctx.Err())
		mu.Unlock()
		return ctx.Err()
	})
	// One queue, so the loops wait in that queue's own dequeue call.
	startWorker(t, opt, noPoll, false, h, "low")
	time.Sleep(40 * time.Second)
	client := tasks.NewClient(opt)
	defer client.Close()
	enqueue(t, client, build(t, 8, "long-idle"))
	for deadline := time.Now().Add(deliver); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(results)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(3 * time.Second) // a retry after a lease expiry would come 2 s later
	mu.Lock()
	defer mu.Unlock()
	if len(results) != 1 || results[0] != nil {
		t.Errorf("handler runs: got %v, want one run that was not cancelled", results)
	}
}

// A Redis user that may not subscribe (Redis 7 ACLs deny channels unless
// granted): the worker never hears wake-ups, so its idle loops poll every
// PollInterval, and jobs run as before wake-ups existed.
func TestWorkerWithoutChannelPermissionPolls(t *testing.T) {
	t.Parallel()
	admin := redisClient(t, peertest.Redis(t))
	ctx := context.Background()
	if err := admin.Do(ctx, "ACL", "SETUSER", "worker", "on", ">s3cret", "~*", "+@all", "resetchannels").Err(); err != nil {
		t.Fatal(err)
	}
	// asynq.ParseRedisURI (so REDIS_URL) drops a URL's user name: build
	// the option by hand.
	opt := asynq.RedisClientOpt{Addr: admin.Options().Addr, Username: "worker", Password: "s3cret"}
	rec := &recorder{}
	w := start(t, newWorker(t, Config{Redis: opt, Concurrency: 2, FetchLoops: 2, FallbackPoll: noPoll, ShutdownTimeout: 2 * time.Second}, rec))
	client := tasks.NewClient(opt)
	defer client.Close()
	var want []string
	for i := range 3 {
		time.Sleep(300 * time.Millisecond) // idle: the loops are polling
		want = append(want, enqueue(t, client, build(t, i*3, fmt.Sprintf("acl-%d", i))))
		rec.waitRuns(t, len(want), "job "+want[i])
	}
	rec.checkRuns(t, want)
	if w.idle.hearing() {
		t.Errorf("the worker hears wake-ups without permission to subscribe")
	}
}

// The subscription's connection is killed (a Redis restart, a proxy's
// idle timeout, a failover): the worker subscribes again by itself and
// hears wake-ups again; a job enqueued after the kill runs with no poll to
// fall back on.
func TestKilledSubscriptionIsReplaced(t *testing.T) {
	t.Parallel()
	url := peertest.Redis(t)
	opt := redisOpt(t, url)
	admin := redisClient(t, url)
	rec := &recorder{}
	w, heard := startWorker(t, opt, noPoll, false, rec)
	client := tasks.NewClient(opt)
	defer client.Close()
	ctx := context.Background()
	var want []string
	for i := range 3 {
		killed, err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
		if err != nil || killed < 1 { // ours, and asynq's own (one per fetch loop)
			t.Fatalf("CLIENT KILL TYPE pubsub: got %d, %v; want our subscription killed", killed, err)
		}
		time.Sleep(time.Second) // idle after the kill
		want = append(want, enqueue(t, client, build(t, i*4, fmt.Sprintf("killed-%d", i))))
		rec.waitRuns(t, len(want), "job "+want[i])
	}
	rec.checkRuns(t, want)
	if !w.idle.hearing() || heard.Load() < 3 {
		t.Errorf("after the kills: hearing %v, %d wake-ups heard; want true and at least 3", w.idle.hearing(), heard.Load())
	}
}
