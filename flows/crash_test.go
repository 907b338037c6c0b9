package flows_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// The worker dies (here: the handler panics) right after the capture's
// advancement script, asynq retries the capture job, and each step runs
// once: the retry sees the capture completed and only advances the flow. On one Redis the script enqueued the e-mail itself, so the rerun
// must enqueue nothing twice; the partner webhook, and the e-mail of a
// flow whose hash has no stored asynq message (one started by an earlier
// version; on a Cluster the middleware enqueues every step), are enqueued
// after the script, and the rerun's advancement enqueues them.
func TestAdvancementInterruptedBeforeTheEnqueueRunsEachDependentOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inlined bool
	}{{"enqueued by the script", true}, {"enqueued by the middleware", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, nil)
			ctx := context.Background()
			var crashed atomic.Int32
			flows.SetHook(e.store, func(point string) error {
				if point == "advanced" && crashed.Add(1) == 1 {
					panic("simulated crash right after the advancement script")
				}
				return nil
			})
			f := build(t, release("esc-crash"))
			if _, err := flows.Start(ctx, e.client, f); err != nil {
				t.Fatal(err)
			}
			key := "escrowjobs:flow:{" + f.ID() + "}"
			if !tc.inlined {
				if err := e.rc.HDel(ctx, key, "q:seller-email").Err(); err != nil {
					t.Fatal(err)
				}
			} else if n, err := e.rc.HExists(ctx, key, "q:seller-email").Result(); err != nil || !n {
				t.Fatalf("flow hash: q:seller-email stored = %v (%v), want true", n, err)
			}
			e.startWorker(t, 8)
			v := e.awaitFlow(t, f.ID(), flows.StateCompleted)
			if crashed.Load() < 1 {
				t.Fatal("the hook never ran")
			}
			capture := step(t, v, "capture").JobID
			escrowtest.Eventually(t, "the capture's retry done", 20*time.Second, func() bool {
				info, err := e.insp.Asynq().GetTaskInfo("critical", capture)
				return err == nil && info.State == asynq.TaskStateCompleted
			})
			// The retry finds the capture completed in the flow's state:
			// it advances the flow without capturing again.
			for _, name := range []string{"capture", "seller-email", "partner-webhook", "audit"} {
				if n := e.adapters.Calls(step(t, v, name).JobID); n != 1 {
					t.Errorf("%s: got %d calls, want 1", name, n)
				}
			}
			qi, err := e.insp.Asynq().GetQueueInfo("default")
			if err != nil {
				t.Fatal(err)
			}
			if qi.Pending+qi.Scheduled+qi.Active != 0 {
				t.Errorf("default queue after the rerun: got %d pending, %d scheduled, %d active; want none", qi.Pending, qi.Scheduled, qi.Active)
			}
		})
	}
}

// A step whose handler succeeded and whose advancement script ran, but
// whose attempt then failed (the store waits for one replica and the
// master has none, as a promoted master right after a failover: the
// advancement's WAIT is never acknowledged within the attempt), is not
// run again by asynq's retry once the replica is there: the retry finds
// the step completed and only advances the flow. The e-mail is sent once,
// and so is the audit after it.
func TestRetryOfACompletedStepDoesNotRunItAgain(t *testing.T) {
	master := peertest.StartRedis(t)
	e := setup(t, map[string]string{"REDIS_URL": master.URL()}, flows.WaitReplicas(1))
	ctx := context.Background()
	mail := payloads.SendReleaseEmail{TransactionID: "esc-retry", RecipientEmail: "seller-esc-retry@example.com", Amount: 125000, Currency: "USD"}
	f := build(t, flows.New("notify", "esc-retry").
		Step("seller-email", mail).
		Step("audit", audit("evt-esc-retry-audit"), flows.After("seller-email")))
	if _, err := flows.Start(ctx, e.client, f); err != nil { // the client waits for no replica
		t.Fatal(err)
	}
	v, err := e.store.Status(ctx, f.ID())
	if err != nil {
		t.Fatal(err)
	}
	emailJob := step(t, v, "seller-email").JobID
	e.startWorker(t, 4)
	escrowtest.Eventually(t, "the e-mail's first attempt failed after it was sent", 60*time.Second, func() bool {
		info, err := e.insp.Asynq().GetTaskInfo("default", emailJob)
		return err == nil && info.State == asynq.TaskStateRetry
	})
	if got := e.adapters.Calls(emailJob); got != 1 {
		t.Fatalf("e-mail: got %d handler runs in the first attempt, want 1", got)
	}
	if v, _ := e.store.Status(ctx, f.ID()); step(t, v, "seller-email").State != flows.StepCompleted {
		t.Fatalf("e-mail step after the failed attempt: got %s, want completed (the script ran)", step(t, v, "seller-email").State)
	}
	peertest.StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	v = e.awaitFlowWithin(t, f.ID(), flows.StateCompleted, 90*time.Second)
	for _, name := range []string{"seller-email", "audit"} {
		if got := e.adapters.Calls(step(t, v, name).JobID); got != 1 {
			t.Errorf("%s: got %d handler runs, want 1", name, got)
		}
	}
}

// stepTask is the job of a flow step as the worker hands it to its
// handler.
func stepTask(flowID, step string) *asynq.Task {
	return asynq.NewTaskWithHeaders("stripe_capture_payment", []byte(`{}`),
		map[string]string{flows.HeaderFlow: flowID, flows.HeaderStep: step})
}

// A step run again after it fully completed (asynq's lease recovery of a
// job whose outcome was lost) enqueues nothing twice.
func TestStepRerunAfterItCompletedEnqueuesNothingTwice(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	f := build(t, release("esc-rerun"))
	if _, err := flows.Start(ctx, e.client, f); err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	mw := e.store.Middleware(e.client)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		handled.Add(1)
		return nil
	}))
	for i := range 2 {
		if err := mw.ProcessTask(ctx, stepTask(f.ID(), "capture")); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	if handled.Load() != 2 {
		t.Fatalf("handler: got %d runs, want 2", handled.Load())
	}
	qi, err := e.insp.Asynq().GetQueueInfo("default")
	if err != nil {
		t.Fatal(err)
	}
	if qi.Pending != 2 {
		t.Errorf("default queue: got %d pending, want 2 (the e-mail and the webhook, once each)", qi.Pending)
	}
	e.startWorker(t, 8)
	v := e.awaitFlow(t, f.ID(), flows.StateCompleted)
	// The capture again, after everything completed.
	if err := mw.ProcessTask(ctx, stepTask(f.ID(), "capture")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	for _, name := range []string{"seller-email", "partner-webhook"} {
		if n := e.adapters.Calls(step(t, v, name).JobID); n != 1 {
			t.Errorf("%s: got %d calls, want 1", name, n)
		}
	}
	if v, _ := e.store.Status(ctx, f.ID()); v.State != flows.StateCompleted {
		t.Errorf("flow: got %s after the rerun, want completed", v.State)
	}
}

// Two worker processes finish the two parents of a fan-in at the same
// instant (both wait at a barrier in the adapters until the other
// arrived): the child runs once, every time.
func TestFanInRaceRunsTheChildOnce(t *testing.T) {
	e := setup(t, nil)
	// A second process: its own client, store and worker, same Redis
	// and adapters.
	e2 := &env{opt: e.opt, client: tasks.NewClient(e.opt), insp: e.insp, adapters: e.adapters, dl: e.dl}
	e2.rc = e.opt.MakeRedisClient().(redis.UniversalClient)
	e2.store = flows.NewStore(e2.rc, e2.insp, flows.WithClient(e2.client))
	t.Cleanup(func() { e2.client.Close(); e2.rc.Close() })

	var mu sync.Mutex
	barriers := map[string]chan struct{}{} // round → closed when both parents arrived
	arrived := map[string]int{}
	var missed atomic.Int32
	e.adapters.FailWith(func(id string, _ int) error {
		var round, which string
		if _, err := fmt.Sscanf(id, "audit_log_created:audit-evt-race-%4s-%1s", &round, &which); err != nil || (which != "a" && which != "b") {
			return nil
		}
		mu.Lock()
		b, ok := barriers[round]
		if !ok {
			b = make(chan struct{})
			barriers[round] = b
		}
		if arrived[round]++; arrived[round] == 2 {
			close(b)
		}
		mu.Unlock()
		select {
		case <-b:
		case <-time.After(5 * time.Second):
			missed.Add(1)
		}
		return nil
	})
	e.startWorker(t, 1)
	e2.startWorker(t, 1)
	const rounds = 20
	for i := range rounds {
		key := fmt.Sprintf("%04d", i)
		f := build(t, flows.New("race", "esc-"+key).
			Step("a", audit("evt-race-"+key+"-a")).
			Step("b", audit("evt-race-"+key+"-b")).
			Step("c", audit("evt-race-"+key+"-c"), flows.After("a", "b")))
		if _, err := flows.Start(context.Background(), e.client, f); err != nil {
			t.Fatal(err)
		}
		v := e.awaitFlow(t, f.ID(), flows.StateCompleted)
		c := step(t, v, "c")
		escrowtest.Eventually(t, "child of round "+key+" ran", 5*time.Second, func() bool { return e.adapters.Calls(c.JobID) >= 1 })
		time.Sleep(20 * time.Millisecond)
		if n := e.adapters.Calls(c.JobID); n != 1 {
			t.Errorf("round %s: child ran %d times, want 1", key, n)
		}
	}
	mu.Lock()
	if len(barriers) != rounds {
		t.Errorf("barriers: got %d rounds, want %d", len(barriers), rounds)
	}
	mu.Unlock()
	if n := missed.Load(); n > 0 {
		t.Errorf("%d parents gave up waiting for the other at the barrier (not run at the same instant)", n)
	}
}

// The start, advancement and completion on a Redis Cluster: every flow
// script touches the flow's own hash slot only.
func TestFlowOnRedisCluster(t *testing.T) {
	cluster := peertest.StartCluster(t)
	e := setup(t, map[string]string{"REDIS_CLUSTER_ADDRS": cluster.Env()})
	e.startWorker(t, 8)
	f := build(t, release("esc-cluster"))
	if _, err := flows.Start(context.Background(), e.client, f); err != nil {
		t.Fatal(err)
	}
	v := e.awaitFlow(t, f.ID(), flows.StateCompleted)
	for _, s := range v.Steps {
		if n := e.adapters.Calls(s.JobID); !s.OnFailure && n != 1 {
			t.Errorf("step %s: got %d calls, want 1", s.Name, n)
		}
	}
	if id, err := flows.Start(context.Background(), e.client, f); id != f.ID() || err == nil {
		t.Errorf("duplicate Start on the cluster: got %q, %v", id, err)
	}
	page, err := e.store.List(context.Background(), flows.Filter{State: flows.StateCompleted, Name: "release"}, "", 10)
	if err != nil || len(page.Items) != 1 {
		t.Errorf("List on the cluster: got %+v, %v", page, err)
	}
	// A failure moves the flow between the indexes; a requeue back.
	var fail atomic.Bool
	fail.Store(true)
	failCapture(e, "esc-cluster-2", &fail)
	failing := build(t, release("esc-cluster-2"))
	if _, err := flows.Start(context.Background(), e.client, failing); err != nil {
		t.Fatal(err)
	}
	e.awaitFlow(t, failing.ID(), flows.StateFailed)
	if page, err := e.store.List(context.Background(), flows.Filter{State: flows.StateFailed}, "", 10); err != nil || len(page.Items) != 1 {
		t.Errorf("failed flows on the cluster: got %+v, %v", page, err)
	}
	if err := e.store.Requeued(context.Background(), failing.ID(), "capture"); err != nil {
		t.Fatal(err)
	}
	if page, err := e.store.List(context.Background(), flows.Filter{State: flows.StateRunning}, "", 10); err != nil || len(page.Items) != 1 {
		t.Errorf("running flows on the cluster after the requeue: got %+v, %v", page, err)
	}
}
