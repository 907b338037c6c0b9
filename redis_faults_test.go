package escrowjobs_test

// Redis faults (issue 5): a Redis killed with SIGKILL and restarted, Redis
// down or hung at enqueue, Redis Cluster, and a Sentinel failover during a
// run. Each test counts the jobs that went in (acknowledged enqueues) and
// the effects that came out (successful adapter calls per job ID) and logs
// both: nothing acknowledged may be lost, nothing may be doubled.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/internal/testenv"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// effects is every adapter at once, keyed by the asynq job ID: it counts
// attempts and successful effects, fails as told, and can hold calls at a
// gate (a held call has been dequeued and is running in its handler).
type effects struct {
	mu    sync.Mutex
	calls map[string]int // job ID → adapter calls
	done  map[string]int // job ID → successful adapter calls (effects)
	fail  func(id string, attempt int) error
	gate  chan struct{}   // non-nil: calls wait until it is closed
	held  map[string]bool // job IDs waiting at the gate now
}

func newEffects() *effects {
	return &effects{calls: map[string]int{}, done: map[string]int{}, held: map[string]bool{}}
}

func (e *effects) call(ctx context.Context) error {
	id, _ := asynq.GetTaskID(ctx)
	e.mu.Lock()
	gate := e.gate
	if gate != nil {
		e.held[id] = true
	}
	e.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
		e.mu.Lock()
		delete(e.held, id)
		e.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.calls[id]++
	n, fail := e.calls[id], e.fail
	e.mu.Unlock()
	var err error
	if fail != nil {
		err = fail(id, n)
	}
	if err == nil {
		e.mu.Lock()
		e.done[id]++
		e.mu.Unlock()
	}
	return err
}

func (e *effects) SendMail(ctx context.Context, _ handlers.Mail) error { return e.call(ctx) }
func (e *effects) Capture(ctx context.Context, _ handlers.Capture) (handlers.PaymentResult, error) {
	return handlers.PaymentResult{ID: "ch_fault", Status: "succeeded"}, e.call(ctx)
}
func (e *effects) Refund(ctx context.Context, _ handlers.Refund) (handlers.PaymentResult, error) {
	return handlers.PaymentResult{ID: "re_fault", Status: "succeeded"}, e.call(ctx)
}
func (e *effects) Send(ctx context.Context, _ handlers.Delivery) error { return e.call(ctx) }
func (e *effects) WriteAudit(ctx context.Context, _ payloads.AuditLogCreated) error {
	return e.call(ctx)
}

func (e *effects) setFail(fn func(id string, attempt int) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fail = fn
}

// hold makes every following call wait in its handler until release.
func (e *effects) hold() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gate = make(chan struct{})
}

func (e *effects) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.gate)
	e.gate = nil
}

func (e *effects) heldIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id := range e.held {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// counts returns the calls and effects of id.
func (e *effects) counts(id string) (calls, done int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[id], e.done[id]
}

// tally compares the acknowledged job IDs with the effects: lost were
// acknowledged and never took effect, doubled took effect more than once.
func (e *effects) tally(acked []string) (effects int, lost, doubled []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range acked {
		n := e.done[id]
		effects += n
		switch {
		case n == 0:
			lost = append(lost, id)
		case n > 1:
			doubled = append(doubled, id)
		}
	}
	return effects, lost, doubled
}

// faultRedis builds the Redis option the way the binaries do, from env.
func faultRedis(t *testing.T, env map[string]string) asynq.RedisConnOpt {
	t.Helper()
	opt, err := tasks.RedisFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// faultWorker starts the real worker (retry gate, dead-letter log) with the
// real handlers over eff, and shuts it down at cleanup.
func faultWorker(t *testing.T, opt asynq.RedisConnOpt, eff *effects, enq handlers.Enqueuer, concurrency, loops int) *deadletter.File {
	t.Helper()
	dl, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dead-letters.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mux, err := handlers.NewServeMux(handlers.Deps{Mailer: eff, Payments: eff, Sender: eff, Audit: eff, Enqueuer: enq, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Redis: opt, Concurrency: concurrency, FetchLoops: loops, DeadLetters: dl, Logger: log, ShutdownTimeout: 2 * time.Second}, mux)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return dl
}

// faultTask builds job i of a series: the eight types without fan-out in
// turn (so all three queues), every ID unique within the series.
func faultTask(t *testing.T, series string, i int, opts ...tasks.Option) *tasks.Task {
	t.Helper()
	tx := fmt.Sprintf("esc-%s-%d", series, i)
	pi := fmt.Sprintf("pi_%s_%d", series, i)
	ev := fmt.Sprintf("evt-%s-%d", series, i)
	to := fmt.Sprintf("party%d@example.com", i)
	var task *tasks.Task
	var err error
	switch i % 8 {
	case 0:
		task, err = tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: tx, RecipientEmail: to, Amount: 100, Currency: "USD"}, opts...)
	case 1:
		task, err = tasks.NewSendRefundEmailTask(payloads.SendRefundEmail{TransactionID: tx, RecipientEmail: to, Amount: 100, Currency: "EUR"}, opts...)
	case 2:
		task, err = tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{TransactionID: tx, DisputeID: "dsp-" + tx, RecipientEmail: to, Reason: "not received"}, opts...)
	case 3:
		task, err = tasks.NewSendPaymentConfirmedEmailTask(payloads.SendPaymentConfirmedEmail{TransactionID: tx, PaymentIntentID: pi, RecipientEmail: to, Amount: 100, Currency: "GBP"}, opts...)
	case 4:
		task, err = tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: tx, PaymentIntentID: pi}, opts...)
	case 5:
		task, err = tasks.NewStripeRefundPaymentTask(payloads.StripeRefundPayment{TransactionID: tx, PaymentIntentID: pi, Amount: 50}, opts...)
	case 6:
		task, err = tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{EventID: ev, PartnerID: "acme", TransactionID: tx, PreviousStatus: "funded", Status: "released", OccurredAt: now}, opts...)
	default:
		task, err = tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: ev, Actor: "ops", Action: "escrow.released", TransactionID: tx, OccurredAt: now}, opts...)
	}
	if err != nil {
		t.Fatalf("build job %d of %s: %v", i, series, err)
	}
	return task
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// awaitJob polls the job's state until it is want.
func awaitJob(t *testing.T, insp *tasks.Inspector, id, want string, timeout time.Duration) tasks.Job {
	t.Helper()
	var j tasks.Job
	var err error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if j, err = insp.Status(id); err == nil && j.State == want {
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s: got state %q (err %v), want %q within %s", id, j.State, err, want, timeout)
	return j
}

// queueTotals sums asynq's counts over all queues.
type queueTotals struct{ Pending, Active, Scheduled, Retry, Archived, Completed int }

func (q queueTotals) jobs() int {
	return q.Pending + q.Active + q.Scheduled + q.Retry + q.Archived + q.Completed
}

func totals(t *testing.T, insp *tasks.Inspector) queueTotals {
	t.Helper()
	var qs []tasks.QueueStats
	var err error
	for range 50 { // right after a restart the first commands may hit dead connections
		if qs, err = insp.Stats(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	var q queueTotals
	for _, s := range qs {
		q.Pending += s.Pending
		q.Active += s.Active
		q.Scheduled += s.Scheduled
		q.Retry += s.Retry
		q.Archived += s.Archived
		q.Completed += s.Completed
	}
	return q
}

// TestRedisKillAndRestartLosesNoAcknowledgedJob kills an append-only Redis
// (fsync always) with SIGKILL in the middle of a run, while it holds
// pending, scheduled and retrying jobs and completed ones, starts it again on
// the same port and directory, and checks that the same worker, never
// restarted, processes every acknowledged job exactly once.
//
// The kill falls between jobs: the worker is processing (slowly) when its
// queues are paused, the jobs in flight finish, then Redis dies. A job in
// flight at the kill is the subject of
// TestJobFinishingWhileRedisIsDownIsNotLost.
func TestRedisKillAndRestartLosesNoAcknowledgedJob(t *testing.T) {
	srv := testenv.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	opt := faultRedis(t, map[string]string{"REDIS_URL": srv.URL()})
	client, insp := tasks.NewClient(opt), tasks.NewInspector(opt)
	t.Cleanup(func() { client.Close(); insp.Close() })
	eff := newEffects()
	const nRetry, nPending, nScheduled = 24, 300, 32
	faultWorker(t, opt, eff, client, 2, 2)
	queues := []string{payloads.QueueCritical, payloads.QueueDefault, payloads.QueueLow}
	// Retrying jobs fail their first attempt; the peer asks for 8 s, so
	// they are still waiting in the retry set when Redis dies. Every job
	// takes 10 ms, so the run is still going when the queues are paused.
	eff.setFail(func(id string, n int) error {
		time.Sleep(10 * time.Millisecond)
		if strings.Contains(id, "retry") && n == 1 { // every ID of the "retry" series
			return tasks.RetryAfter(8*time.Second, errors.New("peer busy"))
		}
		return nil
	})
	ctx := context.Background()
	var acked []string
	kind := map[string]string{}
	enqueue := func(series string, n int, opts ...tasks.Option) []string {
		var ids []string
		for i := range n {
			id, err := client.Enqueue(ctx, faultTask(t, series, i, opts...))
			if err != nil {
				t.Fatalf("enqueue %s %d: %v", series, i, err)
			}
			ids = append(ids, id)
			kind[id] = series
		}
		acked = append(acked, ids...)
		return ids
	}
	for _, id := range enqueue("retry", nRetry) {
		awaitJob(t, insp, id, "retry", 15*time.Second)
	}
	enqueue("pend", nPending)
	enqueue("sched", nScheduled, tasks.ProcessIn(6*time.Second))
	eventually(t, "the worker is processing", 10*time.Second, func() bool { out, _, _ := eff.tally(acked); return out >= 20 })
	for _, q := range queues {
		if err := insp.Asynq().PauseQueue(q); err != nil {
			t.Fatalf("pause %s: %v", q, err)
		}
	}
	eventually(t, "the jobs in flight finished", 10*time.Second, func() bool { return totals(t, insp).Active == 0 })
	before := totals(t, insp)
	doneBefore, _, _ := eff.tally(acked)
	t.Logf("before the kill: %+v (%d effects so far)", before, doneBefore)
	if before.Pending == 0 || before.Scheduled == 0 || before.Retry == 0 || before.Completed == 0 || before.jobs() != len(acked) {
		t.Fatalf("before the kill: got %+v, want pending, scheduled, retrying and completed jobs, %d in all", before, len(acked))
	}

	srv.Kill()
	killedAt := time.Now()
	// While Redis is down an enqueue fails fast and is not acknowledged.
	refused := make([]string, 8)
	var wg sync.WaitGroup
	for i := range refused {
		task := faultTask(t, "down", i)
		refused[i] = task.ID
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if id, err := client.Enqueue(ctx, task); err == nil || id != "" {
				t.Errorf("enqueue with Redis down: got (%q, %v), want an error", id, err)
			}
			if took := time.Since(start); took > 2500*time.Millisecond {
				t.Errorf("enqueue with Redis down took %v, want < 2.5 s", took)
			}
		}()
	}
	wg.Wait()
	time.Sleep(time.Until(killedAt.Add(time.Second)))
	srv.Start()
	t.Logf("Redis down for %v", time.Since(killedAt).Round(time.Millisecond))

	after := totals(t, insp)
	t.Logf("after the restart: %+v", after)
	// Scheduled and retrying jobs may have become pending since (the
	// queues are paused); nothing may be missing or have run.
	if after.jobs() != before.jobs() || after.Completed != before.Completed || after.Active != 0 {
		t.Fatalf("after the restart: got %+v, want the %d jobs of %+v", after, before.jobs(), before)
	}
	for _, q := range queues {
		if err := insp.Asynq().UnpauseQueue(q); err != nil {
			t.Fatalf("unpause %s: %v", q, err)
		}
	}
	eventually(t, "every acknowledged job took effect", 40*time.Second, func() bool {
		_, lost, _ := eff.tally(acked)
		return len(lost) == 0
	})
	for _, id := range acked {
		awaitJob(t, insp, id, "completed", 10*time.Second)
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate would show up here
	out, lost, doubled := eff.tally(acked)
	t.Logf("jobs in %d (%d pending + %d scheduled + %d retrying; %d had taken effect before the kill), effects out %d, lost %d, doubled %d; %d enqueues refused while down",
		len(acked), nPending, nScheduled, nRetry, doneBefore, out, len(lost), len(doubled), len(refused))
	if len(lost) > 0 || len(doubled) > 0 || out != len(acked) {
		t.Errorf("got %d effects for %d jobs; lost %v; doubled %v", out, len(acked), lost, doubled)
	}
	for _, id := range acked {
		calls, _ := eff.counts(id)
		want := 1
		if kind[id] == "retry" {
			want = 2
		}
		if calls != want {
			t.Errorf("%s (%s): got %d attempts, want %d", id, kind[id], calls, want)
		}
	}
	for _, id := range refused {
		if calls, _ := eff.counts(id); calls != 0 {
			t.Errorf("%s: refused at enqueue but ran %d times", id, calls)
		}
		if _, err := insp.Status(id); !errors.Is(err, tasks.ErrNotFound) {
			t.Errorf("%s: refused at enqueue, got status error %v, want ErrNotFound", id, err)
		}
	}
}

// TestJobFinishingWhileRedisIsDownIsNotLost holds four jobs in their
// handlers (every worker slot), kills Redis, lets the jobs finish while it
// is down and starts it again: each job took effect exactly once and ends
// completed. Nothing is lost, and nothing is left for a rerun.
//
// Why it needs the worker's help: asynq v0.26 writes a job's outcome once;
// when that write fails it queues a retry with a context that is already
// cancelled, so it never lands, the job stays "active" until its lease
// expires, and asynq's recoverer runs it again 1–2 minutes later. The
// worker therefore holds a finished job until Redis answers a PING
// (worker.awaitRedis), so the one write lands. Without that, this test saw
// 4 of 4 jobs still active 16 s after the restart.
func TestJobFinishingWhileRedisIsDownIsNotLost(t *testing.T) {
	srv := testenv.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	opt := faultRedis(t, map[string]string{"REDIS_URL": srv.URL()})
	client, insp := tasks.NewClient(opt), tasks.NewInspector(opt)
	t.Cleanup(func() { client.Close(); insp.Close() })
	eff := newEffects()
	const slots = 4
	faultWorker(t, opt, eff, client, slots, 2)
	eff.hold()
	var acked []string
	for i := range slots {
		id, err := client.Enqueue(context.Background(), faultTask(t, "inflight", i))
		if err != nil {
			t.Fatalf("enqueue: %v", err)
		}
		acked = append(acked, id)
	}
	eventually(t, "every worker slot holds a job", 10*time.Second, func() bool { return len(eff.heldIDs()) == slots })
	srv.Kill()
	eff.release()
	eventually(t, "the held jobs took effect", 5*time.Second, func() bool {
		_, lost, _ := eff.tally(acked)
		return len(lost) == 0
	})
	// Longer than go-redis's own dial and command retries (~2 s), so the
	// completion write really fails.
	time.Sleep(4 * time.Second)
	srv.Start()
	// asynq's syncer retries a failed completion every 5 s: give it three.
	states := map[string]string{}
	eventually(t, "Redis answers", 10*time.Second, func() bool { _, err := insp.Stats(); return err == nil })
	restarted := time.Now()
	deadline := restarted.Add(16 * time.Second)
	for {
		completed := 0
		for _, id := range acked {
			j, err := insp.Status(id)
			if err != nil {
				t.Fatalf("job %s after the restart: %v (lost from Redis)", id, err)
			}
			states[id] = j.State
			if j.State == "completed" {
				completed++
			}
		}
		if completed == len(acked) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	settled := time.Since(restarted)
	out, lost, doubled := eff.tally(acked)
	left := 0
	for id, st := range states {
		switch st {
		case "completed":
		default:
			left++
			t.Errorf("job %s: got state %q, want completed: the worker holds a finished job until Redis can record it", id, st)
		}
	}
	t.Logf("jobs in %d (all mid-flight at the kill), effects out %d, lost %d, doubled %d; completed %d, left active for asynq's lease recovery (a rerun in 1-2 min) %d, %v after the restart",
		len(acked), out, len(lost), len(doubled), len(acked)-left, left, settled.Round(time.Millisecond))
	if len(lost) > 0 || len(doubled) > 0 {
		t.Errorf("lost %v; doubled %v", lost, doubled)
	}
}

// enqueueStorm runs n callers at once, each a request path that enqueues
// one job and then answers its request, and returns how long each enqueue
// took and what it returned. It fails the test if a caller hangs or panics.
func enqueueStorm(t *testing.T, client *tasks.Client, series string, n int) (took []time.Duration, errs []error) {
	t.Helper()
	jobs := make([]*tasks.Task, n)
	for i := range jobs {
		jobs[i] = faultTask(t, series, i)
	}
	took, errs = make([]time.Duration, n), make([]error, n)
	answered := make([]bool, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					errs[i] = fmt.Errorf("panic: %v", p)
				}
			}()
			<-start
			t0 := time.Now()
			id, err := client.Enqueue(context.Background(), jobs[i])
			took[i] = time.Since(t0)
			if err == nil && id == "" {
				err = errors.New("no error and no id")
			}
			errs[i] = err
			answered[i] = true // the request path goes on: answer 202, log, …
		}()
	}
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d callers: some enqueue still blocked after 10 s", n)
	}
	for i, ok := range answered {
		if !ok {
			t.Errorf("caller %d never answered its request (%v)", i, errs[i])
		}
	}
	return took, errs
}

// blackHole listens on loopback and accepts connections but never answers:
// a hung Redis (stopped process, full network buffer, stuck proxy).
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestEnqueueDuringRedisOutageFailsFastFor50Callers: with Redis down (killed:
// connection refused) or hung (accepts, never answers), 50 concurrent
// callers each get an error within the enqueue deadline and go on; nothing
// hangs or panics. 2.5 s bounds an error path (the 2 s deadline plus
// scheduling slack); it is not a performance claim.
func TestEnqueueDuringRedisOutageFailsFastFor50Callers(t *testing.T) {
	const callers = 50
	check := func(t *testing.T, took []time.Duration, errs []error) {
		t.Helper()
		var failed int
		for i, err := range errs {
			switch {
			case err == nil:
				t.Errorf("caller %d: enqueue with Redis unavailable succeeded", i)
			case errors.Is(err, tasks.ErrDuplicate) || strings.Contains(err.Error(), "panic"):
				t.Errorf("caller %d: got %v, want a connection error", i, err)
			default:
				failed++
			}
		}
		sorted := slices.Clone(took)
		slices.Sort(sorted)
		maxTook := sorted[len(sorted)-1]
		t.Logf("%d callers: %d errors, enqueue took p50 %v, max %v (first error: %v)",
			len(errs), failed, sorted[len(sorted)/2].Round(time.Millisecond), maxTook.Round(time.Millisecond), errs[0])
		if maxTook >= 2500*time.Millisecond {
			slow := slices.IndexFunc(took, func(d time.Duration) bool { return d == maxTook })
			over := 0
			for _, d := range took {
				if d >= 2500*time.Millisecond {
					over++
				}
			}
			t.Errorf("slowest enqueue took %v, want < 2.5 s (%d of %d callers over; slowest: %v)", maxTook, over, len(took), errs[slow])
		}
	}

	t.Run("killed", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		opt := faultRedis(t, map[string]string{"REDIS_URL": srv.URL()})
		client, insp := tasks.NewClient(opt), tasks.NewInspector(opt)
		t.Cleanup(func() { client.Close(); insp.Close() })
		// Warm the pool: the outage hits live connections, not only dials.
		if took, errs := enqueueStorm(t, client, "warm", callers); slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
			t.Fatalf("enqueue with Redis up: %v (took %v)", errs, took)
		}
		srv.Kill()
		took, errs := enqueueStorm(t, client, "down", callers)
		check(t, took, errs)
		// Redis back: the same client enqueues again; the refused jobs are not there.
		srv.Start()
		var err error
		for range 20 {
			if _, err = client.Enqueue(context.Background(), faultTask(t, "back", 0)); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("enqueue after Redis came back: %v", err)
		}
		if _, err := insp.Status(faultTask(t, "down", 0).ID); !errors.Is(err, tasks.ErrNotFound) {
			t.Errorf("a refused job: got status error %v, want ErrNotFound", err)
		}
	})

	t.Run("hung", func(t *testing.T) {
		opt := faultRedis(t, map[string]string{"REDIS_URL": "redis://" + blackHole(t) + "/0"})
		client := tasks.NewClient(opt)
		t.Cleanup(func() { client.Close() })
		took, errs := enqueueStorm(t, client, "hung", callers)
		check(t, took, errs)
	})
}

// TestRedisClusterRunsTheWholeLifecycle runs everything against a Redis
// Cluster of three masters configured through REDIS_CLUSTER_ADDRS: the nine
// types through their constructors on all three queues, a transient failure
// that retries and succeeds, a permanent failure that archives and shows in
// the dead letters, requeue, stats and the duplicate check.
func TestRedisClusterRunsTheWholeLifecycle(t *testing.T) {
	cluster := testenv.StartCluster(t)
	opt := faultRedis(t, map[string]string{"REDIS_CLUSTER_ADDRS": cluster.Env()})
	if _, ok := opt.(asynq.RedisClusterClientOpt); !ok {
		t.Fatalf("REDIS_CLUSTER_ADDRS: got %T, want asynq.RedisClusterClientOpt", opt)
	}
	client, insp := tasks.NewClient(opt), tasks.NewInspector(opt)
	t.Cleanup(func() { client.Close(); insp.Close() })
	eff := newEffects()
	dl := faultWorker(t, opt, eff, client, 8, 2)

	must := func(task *tasks.Task, err error) *tasks.Task {
		t.Helper()
		if err != nil {
			t.Fatalf("build task: %v", err)
		}
		return task
	}
	nine := []*tasks.Task{
		must(tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: "esc-c1", RecipientEmail: "seller@example.com", Amount: 12345, Currency: "USD"})),
		must(tasks.NewSendRefundEmailTask(payloads.SendRefundEmail{TransactionID: "esc-c2", RecipientEmail: "buyer@example.com", Amount: 500, Currency: "EUR"})),
		must(tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{TransactionID: "esc-c3", DisputeID: "dsp-c3", RecipientEmail: "seller@example.com", Reason: "not received"})),
		must(tasks.NewSendPaymentConfirmedEmailTask(payloads.SendPaymentConfirmedEmail{TransactionID: "esc-c4", PaymentIntentID: "pi_c4", RecipientEmail: "buyer@example.com", Amount: 999, Currency: "GBP"})),
		must(tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-c5", PaymentIntentID: "pi_c5", AmountToCapture: 700})),
		must(tasks.NewStripeRefundPaymentTask(payloads.StripeRefundPayment{TransactionID: "esc-c6", PaymentIntentID: "pi_c6", Amount: 300})),
		must(tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{EventID: "evt-c7", PartnerID: "acme", TransactionID: "esc-c7", PreviousStatus: "funded", Status: "released", OccurredAt: now})),
		must(tasks.NewNotifyDisputeResolvedTask(payloads.NotifyDisputeResolved{DisputeID: "dsp-c8", TransactionID: "esc-c8", Resolution: payloads.ResolutionSplit, BuyerEmail: "b8@example.com", SellerEmail: "s8@example.com", PartnerID: "acme"})),
		must(tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "aud-c9", Actor: "ops", Action: "escrow.released", TransactionID: "esc-c9", OccurredAt: now})),
	}
	permanent := must(tasks.NewStripeRefundPaymentTask(payloads.StripeRefundPayment{TransactionID: "esc-perm", PaymentIntentID: "pi_perm"}))
	transient := must(tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "aud-transient", Actor: "ops", Action: "x", OccurredAt: now}))
	// apiPermanent goes in through the monitor's HTTP API (below).
	apiPermanent := must(tasks.NewStripeCapturePaymentTask(apiCapture))
	eff.setFail(func(id string, n int) error {
		switch {
		case (id == permanent.ID || id == apiPermanent.ID) && n == 1:
			return fmt.Errorf("card declined: %w", asynq.SkipRetry)
		case id == transient.ID && n == 1:
			return errors.New("connection reset by peer")
		}
		return nil
	})

	ctx := context.Background()
	for _, task := range append(slices.Clone(nine), permanent, transient) {
		id, err := client.Enqueue(ctx, task)
		if err != nil || id != task.ID {
			t.Fatalf("enqueue %s: got (%q, %v)", task.ID, id, err)
		}
	}
	fanOut := []string{
		"send_dispute_email:dispute-dsp-c8-resolved-" + payloads.RecipientHash("b8@example.com"),
		"send_dispute_email:dispute-dsp-c8-resolved-" + payloads.RecipientHash("s8@example.com"),
		"webhook_escrow_status_changed:event-dispute-dsp-c8-resolved",
	}
	var withEffect []string // every job whose handler calls an adapter
	for _, task := range nine {
		awaitJob(t, insp, task.ID, "completed", 15*time.Second)
		if task.Type() != "notify_dispute_resolved" {
			withEffect = append(withEffect, task.ID)
		}
	}
	for _, id := range fanOut {
		awaitJob(t, insp, id, "completed", 15*time.Second)
	}
	withEffect = append(withEffect, fanOut...)

	// A transient failure retries (2 s later) and then succeeds.
	if j := awaitJob(t, insp, transient.ID, "completed", 15*time.Second); j.Attempts != 2 {
		t.Errorf("transient failure: got %d attempts, want 2", j.Attempts)
	}
	// A permanent failure archives at once, into both dead-letter records.
	if j := awaitJob(t, insp, permanent.ID, "archived", 15*time.Second); j.Attempts != 1 || !strings.Contains(j.LastError, "card declined") {
		t.Errorf("permanent failure: got attempts %d, lastError %q; want 1 and card declined", j.Attempts, j.LastError)
	}
	desk := tasks.NewDeadLetters(insp, dl)
	dead, err := desk.List(ctx, deadletter.Filter{}, "", 10)
	if err != nil {
		t.Fatalf("dead letters: %v", err)
	}
	if logged := dead.Entries; len(logged) != 1 || logged[0].ID != permanent.ID || logged[0].Queue != "critical" || logged[0].Why != deadletter.WhyPermanent {
		t.Errorf("dead letters: got %+v, want one permanent entry for %s in critical", logged, permanent.ID)
	}

	// Stats show each queue with the exact counts.
	stats, err := insp.Stats()
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	want := map[string][2]int{"critical": {2, 1}, "default": {9, 0}, "low": {2, 0}} // completed, archived
	for _, s := range stats {
		t.Logf("queue %-8s completed %d archived %d processedTotal %d failedTotal %d", s.Queue, s.Completed, s.Archived, s.ProcessedTotal, s.FailedTotal)
		if w, ok := want[s.Queue]; ok {
			if s.Completed != w[0] || s.Archived != w[1] {
				t.Errorf("queue %s: got completed %d archived %d, want %d and %d", s.Queue, s.Completed, s.Archived, w[0], w[1])
			}
			delete(want, s.Queue)
		}
	}
	if len(want) > 0 {
		t.Errorf("stats: queues %v missing", want)
	}

	// Requeue gives the archived job a fresh budget; it succeeds this time.
	if rj, err := desk.Requeue(ctx, permanent.ID, "test", "card updated"); err != nil || rj.State != deadletter.StateRequeued {
		t.Fatalf("requeue: got %+v, %v", rj, err)
	}
	awaitJob(t, insp, permanent.ID, "completed", 15*time.Second)
	if dead, err := desk.List(ctx, deadletter.Filter{State: deadletter.StateOpen}, "", 10); err != nil || len(dead.Entries) != 0 {
		t.Errorf("open dead letters after requeue: got %+v (%v), want none", dead.Entries, err)
	}

	// A duplicate is refused with the existing job's ID.
	for _, task := range []*tasks.Task{nine[4], permanent} {
		if id, err := client.Enqueue(ctx, task); !errors.Is(err, tasks.ErrDuplicate) || id != task.ID {
			t.Errorf("duplicate %s: got (%q, %v), want (%q, ErrDuplicate)", task.ID, id, err, task.ID)
		}
	}

	apiJobs := monitorAPIOverCluster(t, opt, dl, apiPermanent.ID)
	withEffect = append(withEffect, transient.ID, permanent.ID)
	withEffect = append(withEffect, apiJobs...)
	out, lost, doubled := eff.tally(withEffect)
	t.Logf("jobs in %d (8 types with an adapter + notify's 3 fan-out jobs + 1 transient + 1 permanent→requeued + %d through the monitor API), effects out %d, lost %d, doubled %d",
		len(withEffect), len(apiJobs), out, len(lost), len(doubled))
	if len(lost) > 0 || len(doubled) > 0 {
		t.Errorf("lost %v, doubled %v", lost, doubled)
	}
	for id, want := range map[string]int{permanent.ID: 2, transient.ID: 2, apiPermanent.ID: 2, nine[0].ID: 1} {
		if calls, _ := eff.counts(id); calls != want {
			t.Errorf("%s: got %d attempts, want %d", id, calls, want)
		}
	}
	logClusterSpread(t, cluster)
}

var apiCapture = payloads.StripeCapturePayment{TransactionID: "esc-api", PaymentIntentID: "pi_api", AmountToCapture: 42}

// monitorAPIOverCluster drives the monitor's JSON API against the cluster:
// enqueue (and its duplicate), status, stats, dead letters and requeue of
// permanentID, which the adapters fail once. It returns the IDs it enqueued.
func monitorAPIOverCluster(t *testing.T, opt asynq.RedisConnOpt, dl deadletter.Ledger, permanentID string) []string {
	t.Helper()
	const token = "cluster-test-token-0123456789abcdef0123"
	m, err := monitor.New(monitor.Config{RedisOpt: opt, APIToken: token, Username: "ops", Password: "cluster-test-password", DeadLetters: dl})
	if err != nil {
		t.Fatalf("monitor: %v", err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() { srv.Close(); m.Close() })
	call := func(method, path, body string, auth bool, out any) int {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode < 300 {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
			}
		}
		return resp.StatusCode
	}
	awaitAPIState := func(id, want string) {
		t.Helper()
		var j tasks.Job
		eventually(t, "monitor API: job "+id+" "+want, 15*time.Second, func() bool {
			return call(http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id), "", true, &j) == http.StatusOK && j.State == want
		})
	}

	if code := call(http.MethodGet, "/healthz", "", false, nil); code != http.StatusOK {
		t.Errorf("GET /healthz: got %d, want 200", code)
	}
	if code := call(http.MethodGet, "/api/v1/stats", "", false, nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/stats without a token: got %d, want 401", code)
	}
	audit := `{"type":"audit_log_created","payload":{"eventId":"aud-api","actor":"ops","action":"escrow.released","occurredAt":"` + now + `"}}`
	var created struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	if code := call(http.MethodPost, "/api/v1/jobs", audit, true, &created); code != http.StatusCreated || created.ID != "audit_log_created:audit-aud-api" {
		t.Fatalf("POST /api/v1/jobs: got %d %+v, want 201 audit_log_created:audit-aud-api", code, created)
	}
	auditID := created.ID
	if code := call(http.MethodPost, "/api/v1/jobs", audit, true, &created); code != http.StatusOK || created.ID != auditID || !created.Duplicate {
		t.Errorf("POST /api/v1/jobs again: got %d %+v, want 200 with the existing id", code, created)
	}
	capture, _ := json.Marshal(map[string]any{"type": "stripe_capture_payment", "payload": apiCapture})
	if code := call(http.MethodPost, "/api/v1/jobs", string(capture), true, &created); code != http.StatusCreated || created.ID != permanentID {
		t.Fatalf("POST /api/v1/jobs (capture): got %d %+v, want 201 %s", code, created, permanentID)
	}
	awaitAPIState(auditID, "completed")
	awaitAPIState(permanentID, "archived")

	var dead monitor.DeadLetterList
	eventually(t, "the ledger records "+permanentID, 15*time.Second, func() bool {
		return call(http.MethodGet, "/api/v1/dead-letters?limit=10&state=open", "", true, &dead) == http.StatusOK && len(dead.Items) == 1
	})
	if dead.Items[0].ID != permanentID {
		t.Errorf("GET /api/v1/dead-letters: got %+v, want only %s open", dead, permanentID)
	}
	var stats []tasks.QueueStats
	if code := call(http.MethodGet, "/api/v1/stats", "", true, &stats); code != http.StatusOK {
		t.Errorf("GET /api/v1/stats: got %d", code)
	}
	got := map[string]tasks.QueueStats{}
	for _, s := range stats {
		got[s.Queue] = s
	}
	if got["critical"].Archived != 1 || got["low"].Completed < 1 {
		t.Errorf("GET /api/v1/stats: got %+v, want critical with 1 archived and low with completed jobs", stats)
	}
	var requeued deadletter.Entry
	if code := call(http.MethodPost, "/api/v1/dead-letters/"+url.PathEscape(permanentID)+"/requeue", "", true, &requeued); code != http.StatusOK || requeued.ID != permanentID || requeued.State != deadletter.StateRequeued {
		t.Fatalf("POST requeue: got %d %+v", code, requeued)
	}
	awaitAPIState(permanentID, "completed")
	t.Logf("monitor API over the cluster: enqueue 201, duplicate 200, status, stats, dead letters, requeue all answered")
	return []string{auditID, permanentID}
}

// logClusterSpread logs where asynq's queues live and how many keys each
// master holds: the jobs really are spread over the cluster.
func logClusterSpread(t *testing.T, c *testenv.Cluster) {
	t.Helper()
	ctx := context.Background()
	for _, addr := range c.Addrs {
		rc := redis.NewClient(&redis.Options{Addr: addr})
		n, err := rc.DBSize(ctx).Result()
		var queues []string
		for _, q := range []string{"critical", "default", "low"} {
			if k, _ := rc.Exists(ctx, "asynq:{"+q+"}:completed").Result(); k == 1 {
				queues = append(queues, q)
			}
		}
		rc.Close()
		t.Logf("cluster master %s: %d keys (%v), queues %v", addr, n, err, queues)
	}
}

// TestSentinelFailoverLosesNoAcknowledgedJob enqueues a steady stream of
// jobs through a redis-sentinel:// REDIS_URL while the sentinel fails the
// master over to its replica, and checks that every acknowledged job is
// processed exactly once by the same worker. Enqueues that fail during the
// switch are allowed: they were not acknowledged.
//
// The failover is a planned one, done the way Redis documents for
// switching instances (CLIENT PAUSE, see coordinatedFailover): writes on the
// master are paused, the replica catches up, SENTINEL FAILOVER promotes it,
// the old master is made a replica, then unpaused. A bare SENTINEL FAILOVER
// in Redis 7.0 is not coordinated: it does not wait for the replica, and the
// old master stays writable until the sentinel demotes it ~10 s later
// (redis/redis#4819), so writes acknowledged there after the promotion are
// discarded when it resyncs. Measured with this test and a bare SENTINEL
// FAILOVER: 1 acknowledged job lost or 1 job run twice in 4 of 5 runs.
// Replication is asynchronous; no client can close that window.
func TestSentinelFailoverLosesNoAcknowledgedJob(t *testing.T) {
	s := testenv.StartSentinel(t)
	opt := faultRedis(t, map[string]string{"REDIS_URL": s.URL()})
	if _, ok := opt.(asynq.RedisFailoverClientOpt); !ok {
		t.Fatalf("REDIS_URL %s: got %T, want asynq.RedisFailoverClientOpt", s.URL(), opt)
	}
	client := tasks.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	eff := newEffects()
	faultWorker(t, opt, eff, client, 8, 2)

	const n, every = 300, 20 * time.Millisecond
	var (
		mu      sync.Mutex
		acked   []string
		refused []error
	)
	jobs := make([]*tasks.Task, n)
	for i := range jobs {
		jobs[i] = faultTask(t, "fo", i)
	}
	midway := make(chan struct{})
	produced := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(produced)
		for i, job := range jobs {
			if i == n/2 {
				close(midway)
			}
			time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
			id, err := client.Enqueue(context.Background(), job)
			mu.Lock()
			if err == nil {
				acked = append(acked, id)
			} else {
				refused = append(refused, err)
			}
			mu.Unlock()
		}
	}()

	<-midway
	oldMaster, newMaster := s.Master.Addr(), s.Replica.Addr()
	took := coordinatedFailover(t, s, oldMaster, newMaster)
	<-produced
	t.Logf("enqueue stream of %d over %v; writes paused for the failover %v", n, time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))

	mu.Lock()
	defer mu.Unlock()
	// Wait for every acknowledged job (or 30 s), then count.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, lost, _ := eff.tally(acked); len(lost) == 0 {
			break
		}
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate would show up here
	out, lost, doubled := eff.tally(acked)
	firstErr := "none"
	if len(refused) > 0 {
		firstErr = refused[0].Error()
	}
	t.Logf("jobs in %d acknowledged (%d enqueues refused during the switch, first: %s), effects out %d, lost %d, doubled %d",
		len(acked), len(refused), firstErr, out, len(lost), len(doubled))
	if len(acked)+len(refused) != n {
		t.Errorf("got %d acknowledged + %d refused, want %d", len(acked), len(refused), n)
	}
	if len(acked) < n/2 {
		t.Errorf("only %d of %d enqueues acknowledged: the client did not recover after the failover", len(acked), n)
	}
	if len(lost) > 0 || len(doubled) > 0 {
		t.Errorf("lost %v; doubled %v", lost, doubled)
	}
	if got, err := s.MasterAddr(context.Background()); err != nil || got != newMaster {
		t.Errorf("sentinel master after the run: got %q (%v), want %s", got, err, newMaster)
	}
}

// coordinatedFailover moves the master role from oldMaster to newMaster
// without losing an acknowledged write, the way Redis documents switching
// instances with CLIENT PAUSE, and returns how long writes were paused.
func coordinatedFailover(t *testing.T, s *testenv.Sentinel, oldMaster, newMaster string) time.Duration {
	t.Helper()
	ctx := context.Background()
	old := redis.NewClient(&redis.Options{Addr: oldMaster})
	defer old.Close()
	replica := redis.NewClient(&redis.Options{Addr: newMaster})
	defer replica.Close()
	start := time.Now()
	// 1. No new writes on the old master: they wait there (unacknowledged)
	// until step 5.
	if err := old.Do(ctx, "CLIENT", "PAUSE", "30000", "WRITE").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE on %s: %v", oldMaster, err)
	}
	// 2. The replica has everything the master acknowledged.
	eventually(t, "the replica caught up", 10*time.Second, func() bool {
		m, err1 := old.Info(ctx, "replication").Result()
		r, err2 := replica.Info(ctx, "replication").Result()
		mo, ro := infoValue(m, "master_repl_offset"), infoValue(r, "slave_repl_offset")
		return err1 == nil && err2 == nil && mo != "" && mo == ro
	})
	// 3. The sentinel promotes it and announces the switch.
	sc := s.Client()
	defer sc.Close()
	if err := sc.Failover(ctx, testenv.SentinelMasterName).Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	if err := s.WaitMaster(newMaster, 20*time.Second); err != nil {
		t.Fatalf("%v\nsentinel output:\n%s", err, s.Output())
	}
	// 4. Demote the old master now (the sentinel does the same, but only
	// ~10 s later), so the writes queued there cannot land on a dead branch.
	host, port, _ := net.SplitHostPort(newMaster)
	if err := old.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatalf("REPLICAOF on %s: %v", oldMaster, err)
	}
	if err := testenv.WaitRole(oldMaster, "slave", 10*time.Second); err != nil {
		t.Fatalf("%v\nsentinel output:\n%s", err, s.Output())
	}
	// 5. Let them go: they fail with READONLY (or were already retried by
	// the client on the new master, never having run on the old one).
	if err := old.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatalf("CLIENT UNPAUSE on %s: %v", oldMaster, err)
	}
	return time.Since(start)
}

// infoValue is one field of an INFO reply ("" when absent).
func infoValue(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), name+":"); ok {
			return v
		}
	}
	return ""
}
