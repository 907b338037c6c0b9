package repair_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestMain stops the private PostgreSQL cluster after the tests.
func TestMain(m *testing.M) { os.Exit(peertest.RunMain(m)) }

// stores are the two ledgers every requeue test runs against.
var stores = []string{"file", "postgres"}

// eachStore runs test once per ledger store, as a subtest named after the
// store, with its own env.
func eachStore(t *testing.T, test func(t *testing.T, e *env)) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) { test(t, setup(t, store)) })
	}
}

// env is real Redis, a ledger, the repair desk and a real worker whose
// handler fails every job permanently while fail is set, and otherwise
// counts each run and keeps the payload it got.
type env struct {
	opt  asynq.RedisConnOpt
	in   *tasks.Inspector
	d    *repair.Desk
	l    deadletter.Ledger
	ai   *asynq.Inspector
	c    *asynq.Client
	fail atomic.Bool

	mu      sync.Mutex
	runs    map[string]int
	payload map[string]string
}

func setup(t *testing.T, store string) *env {
	t.Helper()
	opt, err := asynq.ParseRedisURI(peertest.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{opt: opt, in: tasks.NewInspector(opt), l: escrowtest.Ledger(t, store), ai: asynq.NewInspector(opt), c: asynq.NewClient(opt),
		runs: map[string]int{}, payload: map[string]string{}}
	e.d = repair.NewDesk(e.in, e.l)
	t.Cleanup(func() { e.in.Close(); e.ai.Close(); e.c.Close() })
	return e
}

// startWorker starts the real worker over e's Redis and ledger with the
// counting handler of env.
func (e *env) startWorker(t *testing.T) {
	t.Helper()
	e.runWorker(t, 8, func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		if e.fail.Load() {
			return fmt.Errorf("peer refused %s: %w", id, asynq.SkipRetry)
		}
		e.mu.Lock()
		e.runs[id]++
		e.payload[id] = string(t.Payload())
		e.mu.Unlock()
		return nil
	})
}

// runWorker starts the real worker over e's Redis and ledger with h,
// stopped at cleanup.
func (e *env) runWorker(t *testing.T, concurrency int, h asynq.HandlerFunc) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := worker.New(worker.Config{Redis: e.opt, DeadLetters: e.l, Logger: log, Concurrency: concurrency, FetchLoops: 1, ShutdownTimeout: 2 * time.Second}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
}

// archived waits until asynq holds job id archived in queue.
func (e *env) archived(t *testing.T, queue, id string) {
	t.Helper()
	escrowtest.Eventually(t, id+" archived", 30*time.Second, func() bool {
		ti, err := e.ai.GetTaskInfo(queue, id)
		return err == nil && ti.State == asynq.TaskStateArchived
	})
}

// ranOnce waits until each of ids has run, gives a doubled run the time to
// show up (waitOut), and fails the test for each that ran more than once.
func (e *env) ranOnce(t *testing.T, ids []string) {
	t.Helper()
	for _, id := range ids {
		escrowtest.Eventually(t, id+" runs", 30*time.Second, func() bool { return e.ran(id) >= 1 })
	}
	waitOut()
	for _, id := range ids {
		if n := e.ran(id); n != 1 {
			t.Errorf("%s: got %d runs, want 1", id, n)
		}
	}
}

func (e *env) ran(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[id]
}

// deadLetters makes dead letters of ids through the worker (fail set):
// archived by asynq, recorded by the worker's error handler.
func (e *env) deadLetters(t *testing.T, typ, payload string, ids ...string) {
	t.Helper()
	e.fail.Store(true)
	for _, id := range ids {
		if _, err := e.c.Enqueue(asynq.NewTask(typ, []byte(payload), asynq.TaskID(id), asynq.MaxRetry(retry.Max))); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		escrowtest.Eventually(t, id+" in the ledger", 30*time.Second, func() bool {
			got, err := e.l.Get(context.Background(), id)
			return err == nil && got.State == deadletter.StateOpen
		})
		e.archived(t, "default", id)
	}
	e.fail.Store(false)
}

// waitOut gives a doubled run the time to show up: the worker polls every
// 10 ms, so a second copy of a pending job would run within this.
func waitOut() { time.Sleep(1500 * time.Millisecond) }

// A dead letter that spent its whole budget comes back with all of it,
// under the same ID, by one Redis transaction; the ledger says who and why.
func TestRequeueGivesTheFullBudgetBack(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		// A plain asynq server with instant retries spends the budget.
		srv := asynq.NewServer(e.opt, asynq.Config{Concurrency: 1, TaskCheckInterval: 10 * time.Millisecond, DelayedTaskCheckInterval: 50 * time.Millisecond,
			LogLevel: asynq.FatalLevel, Queues: map[string]int{"critical": 1}, RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond }})
		if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return errors.New("stripe: 503") })); err != nil {
			t.Fatal(err)
		}
		id := "stripe_capture_payment:capture-pi_123"
		if _, err := e.c.Enqueue(asynq.NewTask("stripe_capture_payment", []byte(`{"transactionId":"tx-1","paymentIntentId":"pi_123"}`), asynq.TaskID(id), asynq.Queue("critical"), asynq.MaxRetry(3))); err != nil {
			t.Fatal(err)
		}
		e.archived(t, "critical", id)
		srv.Shutdown()
		before, _ := e.ai.GetTaskInfo("critical", id)
		if before.Retried != 3 {
			t.Fatalf("got retried %d before the requeue, want 3", before.Retried)
		}
		// The ledger never heard of it (no worker of ours archived it):
		// Requeue records it from asynq's archive first.
		got, err := e.d.Requeue(context.Background(), id, "alice", "Stripe is back")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != deadletter.StateRequeued || got.Actor != "alice" || got.Reason != "Stripe is back" || got.Why != deadletter.WhyExhausted || got.Attempts != 4 {
			t.Errorf("ledger: got %+v; want requeued by alice, exhausted after 4 attempts", got)
		}
		ti, err := e.ai.GetTaskInfo("critical", id)
		if err != nil || ti.State != asynq.TaskStatePending || ti.Retried != 0 || ti.MaxRetry != 3 || ti.LastErr != "" || ti.Headers[deadletter.RunHeader] == "" || string(ti.Payload) != string(before.Payload) {
			t.Errorf("asynq: got %+v (%v); want pending, 0 of 3 retries spent, no last error, a run header, the same payload", ti, err)
		}
		if qi, _ := e.ai.GetQueueInfo("critical"); qi.Archived != 0 || qi.Pending != 1 {
			t.Errorf("got %d archived, %d pending; want 0 and 1", qi.Archived, qi.Pending)
		}
		if _, err := e.d.Requeue(context.Background(), id, "bob", ""); !errors.Is(err, deadletter.ErrNotOpen) {
			t.Errorf("second requeue: got %v, want ErrNotOpen", err)
		}
		e.startWorker(t)
		escrowtest.Eventually(t, "the rerun", 30*time.Second, func() bool { return e.ran(id) == 1 })
	})
}

// A job asynq dropped from its archive (as its trim would) is still
// listed, and a requeue rebuilds it from the ledger's exact payload; a
// real worker runs it.
func TestRequeueRebuildsAJobAsynqDropped(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.startWorker(t)
		id := "send_release_email:escrow-" + strings.Repeat("9", 36) + "-release-abcdef"
		payload := `{"transactionId":"tx-1", "recipientEmail":"\"jane doe\"@example.com","amount":100,"currency":"EUR"}`
		e.deadLetters(t, "send_release_email", payload, id)
		if err := e.ai.DeleteTask("default", id); err != nil { // asynq's trim
			t.Fatal(err)
		}
		p, err := e.d.List(context.Background(), deadletter.Filter{TransactionID: "tx-1"}, "", 10)
		if err != nil || len(p.Entries) != 1 || p.Entries[0].ID != id {
			t.Fatalf("List: got %+v, %v; want %s", p, err, id)
		}
		if _, err := e.d.Requeue(context.Background(), id, "api", "mail relay fixed"); err != nil {
			t.Fatal(err)
		}
		escrowtest.Eventually(t, "the rebuilt job's run", 30*time.Second, func() bool { return e.ran(id) == 1 })
		e.mu.Lock()
		got := e.payload[id]
		e.mu.Unlock()
		if got != payload {
			t.Errorf("got payload %q, want exactly %q", got, payload)
		}
		if ti, err := e.ai.GetTaskInfo("default", id); err != nil || ti.MaxRetry != retry.Max || ti.Timeout == 0 {
			t.Errorf("rebuilt task: got %+v, %v; want MaxRetry %d and the type's timeout", ti, err, retry.Max)
		}
	})
}

// failOn is a go-redis hook that fails the named commands while on.
type failOn struct {
	on   atomic.Bool
	cmds []string
}

func (f *failOn) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *failOn) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.on.Load() && slices.Contains(f.cmds, strings.ToLower(cmd.Name())) {
			return &net.OpError{Op: "write", Net: "tcp", Err: errors.New("connection reset by peer (injected)")}
		}
		return next(ctx, cmd)
	}
}
func (f *failOn) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if f.on.Load() {
			for _, c := range cmds {
				if slices.Contains(f.cmds, strings.ToLower(c.Name())) {
					return &net.OpError{Op: "write", Net: "tcp", Err: errors.New("connection reset by peer (injected)")}
				}
			}
		}
		return next(ctx, cmds)
	}
}

// Redis failing at any step of a requeue loses nothing: the job is
// always in asynq or the ledger (open), and requeueing again completes it;
// it runs once.
func TestRequeueSurvivesFailuresBetweenItsSteps(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		hook := &failOn{cmds: []string{"exec", "evalsha", "eval"}}
		e.in.Redis().AddHook(hook)
		e.startWorker(t)
		ctx := context.Background()
		ids := []string{"audit_log_created:audit-move-fails", "audit_log_created:audit-ledger-fails", "audit_log_created:audit-rebuild-fails"}
		e.deadLetters(t, "audit_log_created", `{"eventId":"e","actor":"a","action":"x","occurredAt":"2026-01-01T00:00:00Z"}`, ids...)

		// 1. The move's transaction fails: still archived, still open.
		hook.on.Store(true)
		if _, err := e.d.Requeue(ctx, ids[0], "api", ""); err == nil {
			t.Fatal("got nil error with Redis failing the move")
		}
		hook.on.Store(false)
		if ti, err := e.ai.GetTaskInfo("default", ids[0]); err != nil || ti.State != asynq.TaskStateArchived {
			t.Errorf("after a failed move: got %+v, %v; want archived", ti, err)
		}

		// 2. Moved, then the ledger write fails: the job is pending and
		// runs; the record is open until the retry completes it.
		repair.SetAfterMove(e.d, func() error { return errors.New("ledger unreachable (injected)") })
		if _, err := e.d.Requeue(ctx, ids[1], "api", ""); err == nil || !strings.Contains(err.Error(), "requeue again") {
			t.Errorf("got %v, want the error to say the job is back and to requeue again", err)
		}
		repair.SetAfterMove(e.d, nil)
		if got, _ := e.l.Get(ctx, ids[1]); got.State != deadletter.StateOpen {
			t.Errorf("ledger after the failed mark: got %s, want open", got.State)
		}

		// 3. Asynq dropped it and the rebuild's enqueue fails: the
		// ledger still has it, open.
		if err := e.ai.DeleteTask("default", ids[2]); err != nil {
			t.Fatal(err)
		}
		hook.on.Store(true)
		if _, err := e.d.Requeue(ctx, ids[2], "api", ""); err == nil {
			t.Fatal("got nil error with Redis failing the rebuild")
		}
		hook.on.Store(false)
		if got, err := e.l.Get(ctx, ids[2]); err != nil || got.State != deadletter.StateOpen || len(got.Payload) == 0 {
			t.Errorf("ledger after a failed rebuild: got %+v, %v; want open with its payload", got, err)
		}

		// Retries complete every one; each job runs exactly once.
		for _, id := range ids {
			got, err := e.d.Requeue(ctx, id, "ops", "retry")
			if err != nil || got.State != deadletter.StateRequeued || got.Actor != "ops" {
				t.Errorf("retry of %s: got %+v, %v; want requeued by ops", id, got, err)
			}
		}
		e.ranOnce(t, ids)
	})
}

// Bulk requeue by type: a dry run changes nothing; the real run requeues
// exactly the 100 matching jobs and each runs once.
func TestBulkRequeueByTypeWithADryRunFirst(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.startWorker(t)
		ctx := context.Background()
		var hooks, others []string
		for i := range 100 {
			hooks = append(hooks, fmt.Sprintf("webhook_escrow_status_changed:event-%03d", i))
		}
		for i := range 10 {
			others = append(others, fmt.Sprintf("audit_log_created:audit-%03d", i))
		}
		since := time.Now().Add(-time.Second)
		e.deadLetters(t, "webhook_escrow_status_changed", `{"eventId":"e","partnerId":"p-1"}`, hooks...)
		e.deadLetters(t, "audit_log_created", `{"eventId":"e"}`, others...)
		f := deadletter.Filter{Type: "webhook_escrow_status_changed", Since: since}

		dry, err := e.d.RequeueMatching(ctx, f, true, "api", "")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(dry.IDs)
		if dry.Matched != 100 || dry.Requeued != 0 || !slices.Equal(dry.IDs, hooks) {
			t.Errorf("dry run: got matched %d, requeued %d, ids %v; want 100, 0, the 100 webhook jobs", dry.Matched, dry.Requeued, dry.IDs)
		}
		if qi, _ := e.ai.GetQueueInfo("default"); qi.Archived != 110 {
			t.Errorf("after the dry run: got %d archived, want 110", qi.Archived)
		}
		if p, _ := e.l.List(ctx, deadletter.Filter{State: deadletter.StateOpen}, "", 1000); len(p.Entries) != 110 {
			t.Errorf("after the dry run: got %d open, want 110", len(p.Entries))
		}

		real, err := e.d.RequeueMatching(ctx, f, false, "api", "partner back")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(real.IDs)
		if real.Matched != 100 || real.Requeued != 100 || !slices.Equal(real.IDs, hooks) || len(real.Failed) != 0 {
			t.Errorf("real run: got %+v; want 100 matched and requeued, the webhook jobs", real)
		}
		e.ranOnce(t, hooks)
		for _, id := range others {
			if n := e.ran(id); n != 0 {
				t.Errorf("%s: got %d runs, want 0 (not matched)", id, n)
			}
			if got, _ := e.l.Get(ctx, id); got.State != deadletter.StateOpen {
				t.Errorf("%s: got %s, want open", id, got.State)
			}
		}
		if p, _ := e.l.List(ctx, deadletter.Filter{State: deadletter.StateRequeued, Type: f.Type}, "", 1000); len(p.Entries) != 100 || p.Entries[0].Reason != "partner back" {
			t.Errorf("got %d requeued records, want 100 with the reason", len(p.Entries))
		}
	})
}

// Discard needs a reason, resolves the record, and frees the job ID in
// asynq; a discarded dead letter cannot be requeued.
func TestDiscard(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.startWorker(t)
		ctx := context.Background()
		id := "notify_dispute_resolved:dispute-1-resolved"
		e.deadLetters(t, "notify_dispute_resolved", `{"disputeId":"1"}`, id)
		if _, err := e.d.Discard(ctx, id, "bob", " "); !errors.Is(err, repair.ErrReasonRequired) {
			t.Errorf("no reason: got %v, want ErrReasonRequired", err)
		}
		got, err := e.d.Discard(ctx, id, "bob", "resolved by hand")
		if err != nil || got.State != deadletter.StateDiscarded || got.Actor != "bob" || got.Reason != "resolved by hand" || got.ResolvedAt == nil {
			t.Errorf("got %+v, %v; want discarded by bob", got, err)
		}
		if _, err := e.ai.GetTaskInfo("default", id); !errors.Is(err, asynq.ErrTaskNotFound) {
			t.Errorf("asynq: got %v, want the archived copy gone", err)
		}
		if _, err := e.d.Requeue(ctx, id, "api", ""); !errors.Is(err, deadletter.ErrNotOpen) {
			t.Errorf("requeue after discard: got %v, want ErrNotOpen", err)
		}
		if _, err := e.d.Requeue(ctx, "audit_log_created:nope", "api", ""); !errors.Is(err, deadletter.ErrNotFound) {
			t.Errorf("requeue of an unknown job: got %v, want ErrNotFound", err)
		}
	})
}

// A record that does not hold the exact payload (cut because it was
// oversized, or masked by a version before the ledger) cannot rebuild a
// job asynq dropped: the requeue says so and the record stays open.
func TestRequeueRefusesToRebuildFromAMaskedPayload(t *testing.T) {
	e := setup(t, "file")
	ctx := context.Background()
	huge := deadletter.Entry{ID: "audit_log_created:audit-huge", Type: "audit_log_created", Queue: "low", Why: deadletter.WhyPermanent,
		Payload: []byte(strings.Repeat("x", deadletter.MaxPayloadBytes+1)), FailedAt: time.Now()}
	if _, err := e.l.Record(ctx, huge); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Requeue(ctx, huge.ID, "api", ""); !errors.Is(err, repair.ErrCannotRebuild) {
		t.Errorf("got %v, want ErrCannotRebuild", err)
	}
	if got, _ := e.l.Get(ctx, huge.ID); got.State != deadletter.StateOpen {
		t.Errorf("got %s, want open", got.State)
	}
	if qi, err := e.ai.GetQueueInfo("low"); err == nil && qi.Pending != 0 {
		t.Errorf("got %d pending, want nothing enqueued", qi.Pending)
	}
}

// The worker records a failure in its error handler, which asynq runs
// before it archives the job: a requeue in that moment must change nothing
// (the job would otherwise be archived right after and its record marked
// requeued, hidden from every list of open dead letters).
func TestRequeueOfAJobNotArchivedYetChangesNothing(t *testing.T) {
	e := setup(t, "file")
	ctx := context.Background()
	release, started := make(chan struct{}), make(chan struct{}, 1)
	var runs atomic.Int32
	e.runWorker(t, 1, func(ctx context.Context, t *asynq.Task) error {
		if runs.Add(1) > 1 {
			return nil // the run after the requeue; failing it would reopen the record
		}
		started <- struct{}{}
		<-release
		return fmt.Errorf("peer refused: %w", asynq.SkipRetry)
	})
	const id = "audit_log_created:audit-still-active"
	if _, err := e.c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{}`), asynq.TaskID(id), asynq.Queue("default"), asynq.MaxRetry(retry.Max))); err != nil {
		t.Fatal(err)
	}
	<-started
	// What the error handler writes just before asynq archives the job.
	if _, err := e.l.Record(ctx, deadletter.Entry{ID: id, Type: "audit_log_created", Queue: "default", Why: deadletter.WhyPermanent,
		Payload: []byte(`{}`), Error: "peer refused", Attempts: 1, FailedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Requeue(ctx, id, "api", "too early"); !errors.Is(err, repair.ErrStillActive) {
		t.Errorf("requeue while active: got %v, want ErrStillActive", err)
	}
	if got, _ := e.l.Get(ctx, id); got.State != deadletter.StateOpen {
		t.Errorf("ledger: got %s, want open", got.State)
	}
	close(release)
	e.archived(t, "default", id)
	if _, err := e.d.Requeue(ctx, id, "api", "now"); err != nil {
		t.Fatalf("requeue once archived: %v", err)
	}
	if got, _ := e.l.Get(ctx, id); got.State != deadletter.StateRequeued || got.Actor != "api" {
		t.Errorf("ledger: got %s by %q, want requeued by api", got.State, got.Actor)
	}
}
