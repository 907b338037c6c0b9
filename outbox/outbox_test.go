package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// env is one test's PostgreSQL database and Redis.
type env struct {
	db      *pgxpool.Pool
	redis   asynq.RedisConnOpt
	rdb     *redis.Client
	client  *tasks.Client
	inspect *asynq.Inspector
}

// setup gives a test a fresh database with the outbox table and a Redis
// (redisURL, or a private one when empty).
func setup(t testing.TB, redisURL string) *env {
	t.Helper()
	ctx := context.Background()
	db := peertest.PostgresPool(t)
	if err := outbox.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if redisURL == "" {
		redisURL = peertest.Redis(t)
	}
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, redis: opt, client: tasks.NewClient(opt), inspect: asynq.NewInspector(opt)}
	ropt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = redis.NewClient(ropt)
	t.Cleanup(func() { e.client.Close(); e.inspect.Close(); e.rdb.Close() })
	return e
}

// countingClient is the relay's tasks.Client, counting enqueue calls and
// duplicates per job ID.
type countingClient struct {
	c          *tasks.Client
	mu         sync.Mutex
	attempts   map[string]int
	duplicates map[string]int
}

func newCounting(c *tasks.Client) *countingClient {
	return &countingClient{c: c, attempts: map[string]int{}, duplicates: map[string]int{}}
}

func (cc *countingClient) Enqueue(ctx context.Context, t *tasks.Task) (string, error) {
	id, err := cc.c.Enqueue(ctx, t)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.attempts[t.ID]++
	if errors.Is(err, tasks.ErrDuplicate) {
		cc.duplicates[t.ID]++
	}
	return id, err
}

// startRelay runs a relay until the test ends.
func (e *env) startRelay(t testing.TB, cfg outbox.RelayConfig) *outbox.Relay {
	t.Helper()
	cfg.DB = e.db
	if cfg.Client == nil {
		cfg.Client = e.client
	}
	r, err := outbox.NewRelay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// add commits ts in one transaction.
func (e *env) add(t *testing.T, ts ...*tasks.Task) {
	t.Helper()
	if err := pgx.BeginFunc(context.Background(), e.db, func(tx pgx.Tx) error {
		return outbox.Add(context.Background(), tx, ts...)
	}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) backlog(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM `+outbox.Table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func auditPayload(id string) payloads.AuditLogCreated {
	return payloads.AuditLogCreated{
		EventID: id, Actor: "escrow-api", Action: "escrow.released", TransactionID: "esc-1", OccurredAt: "2026-01-02T03:04:05Z",
	}
}

func audit(t testing.TB, id string, opts ...tasks.Option) *tasks.Task {
	t.Helper()
	task, err := tasks.NewAuditLogCreatedTask(auditPayload(id), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// pendingIDs lists the job IDs pending in queue, in Redis order.
func (e *env) pendingIDs(t *testing.T, queue string) []string {
	t.Helper()
	ids, err := e.rdb.LRange(context.Background(), "asynq:{"+queue+"}:pending", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// A relayed job is the task Add was given: type, payload, queue, timeout,
// retry budget, retention, process time and headers.
func TestRelayedJobIsTheTaskAddWasGiven(t *testing.T) {
	e := setup(t, "")
	const pi = "pi_3MtwBwLkdIwHu7ix28a3tqPa"
	capture, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-1", PaymentIntentID: pi})
	if err != nil {
		t.Fatal(err)
	}
	mail, err := tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{
		TransactionID: "esc-1", RecipientEmail: `"jane doe"@example.com`, Amount: 12500, Currency: "EUR", RecipientName: "Jörg Übel"},
		tasks.ProcessIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	withHeaders := audit(t, "evt-headers")
	withHeaders.Task = asynq.NewTaskWithHeaders(withHeaders.Type(), withHeaders.Payload(),
		map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, withHeaders.Options()...)
	addedAt := time.Now()
	e.add(t, capture, mail, withHeaders)
	e.startRelay(t, outbox.RelayConfig{})
	escrowtest.Eventually(t, "the outbox to drain", 30*time.Second, func() bool { return e.backlog(t) == 0 })

	for _, tc := range []struct {
		task      *tasks.Task
		queue     string
		state     asynq.TaskState
		processAt time.Time // zero: now
	}{
		{capture, "critical", asynq.TaskStatePending, time.Time{}},
		{mail, "default", asynq.TaskStateScheduled, addedAt.Add(time.Hour)},
		{withHeaders, "low", asynq.TaskStatePending, time.Time{}},
	} {
		info, err := e.inspect.GetTaskInfo(tc.queue, tc.task.ID)
		if err != nil {
			t.Errorf("%s: %v", tc.task.ID, err)
			continue
		}
		if info.Type != tc.task.Type() || string(info.Payload) != string(tc.task.Payload()) {
			t.Errorf("%s: got type %s payload %s, want %s %s", tc.task.ID, info.Type, info.Payload, tc.task.Type(), tc.task.Payload())
		}
		if info.State != tc.state || info.MaxRetry != retry.Max || info.Retention != tasks.Retention {
			t.Errorf("%s: got state %s maxRetry %d retention %s, want %s %d %s", tc.task.ID, info.State, info.MaxRetry, info.Retention,
				tc.state, retry.Max, tasks.Retention)
		}
		if !tc.processAt.IsZero() && (info.NextProcessAt.Before(tc.processAt.Add(-time.Second)) || info.NextProcessAt.After(tc.processAt.Add(2*time.Second))) {
			t.Errorf("%s: got next process at %s, want %s (ProcessIn counted from Add)", tc.task.ID, info.NextProcessAt, tc.processAt)
		}
		if want := timeoutOf(tc.task); info.Timeout != want || want <= 0 {
			t.Errorf("%s: got timeout %s, want the type's %s", tc.task.ID, info.Timeout, want)
		}
		if tc.task == withHeaders && info.Headers["traceparent"] != withHeaders.Headers()["traceparent"] {
			t.Errorf("%s: got headers %v, want the traceparent given to Add", tc.task.ID, info.Headers)
		}
	}
}

// timeoutOf is the timeout the constructor gave t.
func timeoutOf(t *tasks.Task) time.Duration {
	for _, o := range t.Options() {
		if o.Type() == asynq.TimeoutOpt {
			return o.Value().(time.Duration)
		}
	}
	return 0
}

// (4) A rolled-back transaction leaves no row and no job.
func TestRolledBackTransactionLeavesNoJob(t *testing.T) {
	e := setup(t, "")
	ctx := context.Background()
	rolledBack := audit(t, "evt-rolled-back")
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		if err := outbox.Add(ctx, tx, rolledBack); err != nil {
			return err
		}
		return errors.New("the escrow change failed")
	})
	if err == nil {
		t.Fatal("want the transaction to fail")
	}
	committed := audit(t, "evt-committed") // proves the relay ran past the rolled-back one
	e.add(t, committed)
	e.startRelay(t, outbox.RelayConfig{})
	escrowtest.Eventually(t, "the committed job", 30*time.Second, func() bool { return len(e.pendingIDs(t, "low")) == 1 })
	if got, want := e.pendingIDs(t, "low"), []string{committed.ID}; !slices.Equal(got, want) {
		t.Errorf("got pending %q, want %q", got, want)
	}
	if _, err := e.inspect.GetTaskInfo("low", rolledBack.ID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("rolled-back job: got %v, want asynq.ErrTaskNotFound", err)
	}
}

// (5) The same side effect added in two transactions is one job: the
// second Add of a waiting row is a no-op, and a third Add after the relay
// deleted the row is refused by Redis (ErrDuplicate counts as done), as a
// second Enqueue would be within retention.
func TestSameJobAddedInTwoTransactionsIsOneJob(t *testing.T) {
	e := setup(t, "")
	first := audit(t, "evt-twice")
	e.add(t, first)
	e.add(t, audit(t, "evt-twice")) // a retried request, before the relay ran
	if got := e.backlog(t); got != 1 {
		t.Errorf("outbox rows after two Adds of one job ID: got %d, want 1", got)
	}
	cc := newCounting(e.client)
	r := e.startRelay(t, outbox.RelayConfig{Client: cc})
	escrowtest.Eventually(t, "the outbox to drain", 30*time.Second, func() bool { return e.backlog(t) == 0 })

	e.add(t, audit(t, "evt-twice")) // again, after it was relayed
	escrowtest.Eventually(t, "the outbox to drain again", 30*time.Second, func() bool { return e.backlog(t) == 0 })

	if got, want := e.pendingIDs(t, "low"), []string{first.ID}; !slices.Equal(got, want) {
		t.Errorf("got pending %q, want %q", got, want)
	}
	cc.mu.Lock()
	attempts, dups := cc.attempts[first.ID], cc.duplicates[first.ID]
	cc.mu.Unlock()
	if attempts != 2 || dups != 1 {
		t.Errorf("got %d enqueue attempts and %d duplicates, want 2 and 1 (the row added after the relay)", attempts, dups)
	}
	if got := r.Counts(); got.Enqueued != 1 || got.Duplicates != 1 || got.Failures != 0 {
		t.Errorf("got counts %+v, want 1 enqueued, 1 duplicate, 0 failures", got)
	}
}

// (3) Two relays on one table enqueue each of 20,000 rows exactly once.
func TestTwoRelaysEnqueueEach20000RowsOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	const n, perTx = 20000, 500
	want := make([]string, 0, n)
	for i := 0; i < n; i += perTx {
		batch := make([]*tasks.Task, 0, perTx)
		for j := i; j < i+perTx; j++ {
			task := audit(t, fmt.Sprintf("evt-%05d", j))
			batch = append(batch, task)
			want = append(want, task.ID)
		}
		e.add(t, batch...)
	}
	cc := newCounting(e.client)
	relays := []*outbox.Relay{
		e.startRelay(t, outbox.RelayConfig{Client: cc, BatchSize: 250}),
		e.startRelay(t, outbox.RelayConfig{Client: cc, BatchSize: 250}),
	}
	escrowtest.Eventually(t, "the outbox to drain", 3*time.Minute, func() bool { return e.backlog(t) == 0 })

	got := e.pendingIDs(t, "low")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Redis holds %d pending jobs (%d distinct), want the %d job IDs added", len(got), len(slices.Compact(slices.Clone(got))), n)
	}
	cc.mu.Lock()
	var twice []string
	for id, a := range cc.attempts {
		if a != 1 {
			twice = append(twice, id)
		}
	}
	attempts, dups := len(cc.attempts), len(cc.duplicates)
	cc.mu.Unlock()
	if attempts != n || len(twice) != 0 || dups != 0 {
		t.Errorf("got %d job IDs attempted, %d attempted more than once (e.g. %q), %d duplicates; want %d, 0, 0",
			attempts, len(twice), twice[:min(3, len(twice))], dups, n)
	}
	a, b := relays[0].Counts(), relays[1].Counts()
	t.Logf("relay 1 %+v, relay 2 %+v", a, b)
	if a.Enqueued+b.Enqueued != n || a.Attempts == 0 || b.Attempts == 0 {
		t.Errorf("got relay counts %+v and %+v, want both relays working and %d enqueued in all", a, b, n)
	}
}

// A committed row wakes an idle relay through NOTIFY: with a poll interval
// of an hour the job can only arrive through the notification.
func TestNotifyWakesAnIdleRelay(t *testing.T) {
	e := setup(t, "")
	e.startRelay(t, outbox.RelayConfig{PollInterval: time.Hour})
	// Three rounds: whatever wake-up the relay's start produced is spent by
	// the first, so the later ones can only come from NOTIFY.
	for i := range 3 {
		time.Sleep(200 * time.Millisecond) // the relay has found the table empty and waits
		e.add(t, audit(t, fmt.Sprintf("evt-notify-%d", i)))
		escrowtest.Eventually(t, fmt.Sprintf("job %d in Redis", i+1), 30*time.Second, func() bool { return len(e.pendingIDs(t, "low")) == i+1 })
	}
}

// Redis down: committed rows wait (none lost, backlog and age reported) and
// flow once Redis is back, each once.
func TestRedisDownRowsWaitAndFlowOnceBack(t *testing.T) {
	t.Parallel()
	rs := peertest.StartRedis(t)
	e := setup(t, rs.URL())
	rs.Kill()
	var want []string
	for i := range 10 {
		task := audit(t, fmt.Sprintf("evt-outage-%d", i))
		e.add(t, task)
		want = append(want, task.ID)
	}
	r := e.startRelay(t, outbox.RelayConfig{MaxBackoff: 500 * time.Millisecond})
	escrowtest.Eventually(t, "enqueue failures while Redis is down", 30*time.Second, func() bool { return r.Counts().Failures >= 2 })
	st, err := r.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog != 10 || st.OldestAge <= 0 {
		t.Errorf("while Redis is down: got %+v, want backlog 10 and a positive oldest age", st)
	}
	rs.Start()
	escrowtest.Eventually(t, "the outbox to drain after Redis came back", 60*time.Second, func() bool { return e.backlog(t) == 0 })
	got := e.pendingIDs(t, "low")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got pending %q, want %q", got, want)
	}
	if c := r.Counts(); c.Enqueued != 10 || c.Duplicates != 0 {
		t.Errorf("got counts %+v, want 10 enqueued and no duplicates", c)
	}
}

// The collectors report the backlog, the oldest row's age and the counters.
func TestCollectorsReportBacklogAndAge(t *testing.T) {
	e := setup(t, "")
	r, err := outbox.NewRelay(context.Background(), outbox.RelayConfig{DB: e.db, Client: e.client})
	if err != nil {
		t.Fatal(err)
	}
	e.add(t, audit(t, "evt-m1"), audit(t, "evt-m2"))
	if _, err := e.db.Exec(context.Background(), `UPDATE `+outbox.Table+` SET created_at = now() - interval '90 seconds' WHERE job_id = $1`,
		"audit_log_created:audit-evt-m1"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	got := escrowtest.Gather(t, reg)
	for _, tc := range []struct {
		name     string
		min, max float64
	}{
		{"escrowjobs_outbox_backlog", 2, 2},
		{"escrowjobs_outbox_oldest_age_seconds", 90, 200},
		{"escrowjobs_outbox_stats_up", 1, 1},
		{"escrowjobs_outbox_relayed_total{enqueued}", 0, 0},
		{"escrowjobs_outbox_relayed_total{duplicate}", 0, 0},
		{"escrowjobs_outbox_enqueue_failures_total", 0, 0},
		{"escrowjobs_outbox_held_back_total", 0, 0},
	} {
		v, ok := got[tc.name]
		if !ok || v < tc.min || v > tc.max {
			t.Errorf("%s: got %v (present %v), want %v..%v", tc.name, v, ok, tc.min, tc.max)
		}
	}
}

// Migrate from several processes at once (a relay and a service starting
// together) succeeds everywhere; a bare CREATE TABLE IF NOT EXISTS fails
// one of them with a unique violation in pg_type.
func TestMigrateConcurrentlySucceeds(t *testing.T) {
	ctx := context.Background()
	url := peertest.Postgres(t)
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			errs <- outbox.Migrate(ctx, conn)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Migrate: got %v, want nil", err)
		}
	}
}

// A row that arrives without a notification (a lost NOTIFY, or a row
// written by hand) is relayed by the poll.
func TestPollRelaysARowWithoutNotification(t *testing.T) {
	e := setup(t, "")
	e.startRelay(t, outbox.RelayConfig{PollInterval: 100 * time.Millisecond})
	time.Sleep(200 * time.Millisecond) // the relay has found the table empty and waits
	task := audit(t, "evt-no-notify")
	if _, err := e.db.Exec(context.Background(), `INSERT INTO `+outbox.Table+` (job_id, task_type, payload, queue, max_retry) VALUES ($1, $2, $3, 'low', 3)`,
		task.ID, task.Type(), task.Payload()); err != nil {
		t.Fatal(err)
	}
	escrowtest.Eventually(t, "the job in Redis", 30*time.Second, func() bool { return len(e.pendingIDs(t, "low")) == 1 })
	if got, want := e.pendingIDs(t, "low"), []string{task.ID}; !slices.Equal(got, want) {
		t.Errorf("got pending %q, want %q", got, want)
	}
}

// A task added in a request's span carries that span's trace context to
// the worker without tasks.Tracing.Stamp; one that already has a trace
// context keeps it. Each carries its due time as of Add.
func TestAddCarriesTheCallersTraceContext(t *testing.T) {
	e := setup(t, "")
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	plain := audit(t, "evt-traced")
	const stamped = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	given := audit(t, "evt-stamped")
	given.Task = asynq.NewTaskWithHeaders(given.Type(), given.Payload(), map[string]string{"traceparent": stamped}, given.Options()...)
	later := audit(t, "evt-later", tasks.ProcessIn(time.Hour))
	before := time.Now()
	if err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, plain, given, later) }); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if got := plain.Headers()["traceparent"]; got != "" {
		t.Errorf("Add changed the caller's task: traceparent %q", got)
	}
	e.startRelay(t, outbox.RelayConfig{})
	escrowtest.Eventually(t, "the outbox to drain", 30*time.Second, func() bool { return e.backlog(t) == 0 })
	for _, tc := range []struct {
		task *tasks.Task
		want string
	}{
		{plain, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{given, stamped},
	} {
		info, err := e.inspect.GetTaskInfo("low", tc.task.ID)
		if err != nil {
			t.Fatalf("%s: %v", tc.task.ID, err)
		}
		if got := info.Headers["traceparent"]; got != tc.want {
			t.Errorf("%s: got traceparent %q, want %q", tc.task.ID, got, tc.want)
		}
		// Due when Add ran: the worker's start latency counts from there.
		if ready := tasks.ReadyAt(info.Headers); ready.Before(before) || ready.After(after) {
			t.Errorf("%s: got ready-at %v, want between %v and %v", tc.task.ID, ready, before, after)
		}
	}
	info, err := e.inspect.GetTaskInfo("low", later.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ready := tasks.ReadyAt(info.Headers); ready.Before(before.Add(time.Hour)) || ready.After(after.Add(time.Hour)) {
		t.Errorf("a job due in an hour: got ready-at %v, want an hour after Add", ready)
	}
}
