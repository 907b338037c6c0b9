package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func ledgerIDs(t *testing.T, l deadletter.Ledger) map[string]int {
	t.Helper()
	out := map[string]int{}
	for cursor := ""; ; {
		p, err := l.List(context.Background(), deadletter.Filter{}, cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			out[e.ID]++
		}
		if p.Next == "" {
			return out
		}
		cursor = p.Next
	}
}

// sweeper is a worker that is never started, for calling sweep by hand
// as a worker process does; its Redis client closes at cleanup.
func sweeper(t *testing.T, opt asynq.RedisConnOpt, dl deadletter.Ledger) *Worker {
	t.Helper()
	w := newWorker(t, Config{Redis: opt, DeadLetters: dl}, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	t.Cleanup(func() { w.rc.Close() })
	return w
}

// archiveAsCrashed stands in for asynq's recoverer: a plain asynq server
// (no ledger) fails each job with the lease error, so asynq archives it
// as it does a job whose worker died. It returns once queue's archive
// holds them all.
func archiveAsCrashed(t *testing.T, opt asynq.RedisConnOpt, queue string, jobs ...*asynq.Task) {
	t.Helper()
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 1, TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel, Queues: map[string]int{queue: 1}})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("%w: %w", asynq.ErrLeaseExpired, asynq.SkipRetry)
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	c := asynq.NewClient(opt)
	defer c.Close()
	for _, job := range jobs {
		if _, err := c.Enqueue(job, asynq.Queue(queue)); err != nil {
			t.Fatal(err)
		}
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	waitFor(t, "the crash archive", func() bool { qi, err := insp.GetQueueInfo(queue); return err == nil && qi.Archived == len(jobs) })
}

// The sweep covers every archived job however many (far more than one
// page), records what the ledger lacks (a job asynq's recoverer archived
// after its worker died), and leaves what the error handler recorded as
// it is: each failure appears once, also when two workers sweep, and a
// second sweep records nothing.
func TestSweepRecordsEveryArchivedJobOnce(t *testing.T) {
	opt := redisOpt(t, peertest.Redis(t))
	dl := deadLetters(t)
	c := asynq.NewClient(opt)
	defer c.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()

	// 1. Three permanent failures, recorded by the real worker's handler.
	w := newWorker(t, Config{Redis: opt, DeadLetters: dl, Concurrency: 2, FetchLoops: 1}, asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("refused: %w", asynq.SkipRetry)
	}))
	w.sweepEvery = time.Hour // this test sweeps by hand
	start(t, w)
	for i := range 3 {
		if _, err := c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{"eventId":"e"}`), asynq.TaskID(fmt.Sprint("handled-", i)))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the handler's records", func() bool { return len(ledgerIDs(t, dl)) == 3 })
	w.Shutdown()

	// 2. A job asynq's recoverer archived.
	archiveAsCrashed(t, opt, "crash", asynq.NewTask("audit_log_created", []byte(`{"eventId":"e","actor":"jane@bücher.de"}`), asynq.TaskID("lease-1")))

	// 3. 450 archived jobs the ledger never heard of (more than two pages).
	for i := range 450 {
		if _, err := c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{}`), asynq.TaskID(fmt.Sprintf("parked-%03d", i)), asynq.Queue("parked"))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := insp.ArchiveAllPendingTasks("parked"); err != nil {
		t.Fatal(err)
	}

	total := 0
	for range 2 { // two worker processes sweeping the same Redis
		total += sweeper(t, opt, dl).sweep(context.Background(), insp)
	}
	if total != 451 {
		t.Errorf("got %d recorded by the sweeps, want 451 (450 parked + lease-1)", total)
	}
	got := ledgerIDs(t, dl)
	if len(got) != 454 {
		t.Errorf("got %d distinct jobs in the ledger, want 454", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s: got %d records, want 1", id, n)
		}
	}
	e, err := dl.Get(context.Background(), "lease-1")
	if err != nil || e.Why != deadletter.WhyCrashed || string(e.Payload) != `{"eventId":"e","actor":"jane@bücher.de"}` {
		t.Errorf("lease-1: got %+v, %v; want crashed, exact payload", e, err)
	}
	if h, err := dl.Get(context.Background(), "handled-0"); err != nil || h.Why != deadletter.WhyPermanent {
		t.Errorf("handled-0: got %+v, %v; want the handler's permanent record", h, err)
	}
	w2 := sweeper(t, opt, dl)
	if n := w2.sweep(context.Background(), insp); n != 0 {
		t.Errorf("third sweep: got %d recorded, want 0", n)
	}
	if n := w2.rc.ZCard(context.Background(), sweptKey("parked")).Val(); n != 450 {
		t.Errorf("got %d jobs kept as swept in parked, want 450", n)
	}
	if ttl := w2.rc.TTL(context.Background(), sweptKey("parked")).Val(); ttl <= 0 || ttl > sweptTTL {
		t.Errorf("swept set of parked: got TTL %v, want (0, %v]", ttl, sweptTTL)
	}
}

// Clock skew between processes cannot hide an archive: a job that a
// recoverer whose clock is an hour behind archived (asynq scores it by
// that clock, far below every archive the sweep has seen) is still
// recorded; and the sweep forgets jobs no longer archived.
func TestSweepRecordsAnArchiveScoredFarBelowTheOthers(t *testing.T) {
	ctx := context.Background()
	opt := redisOpt(t, peertest.Redis(t))
	dl := deadLetters(t)
	w := sweeper(t, opt, dl)
	insp := asynq.NewInspector(opt)
	defer insp.Close()

	archiveAsCrashed(t, opt, "crash", asynq.NewTask("audit_log_created", []byte(`{"eventId":"e"}`), asynq.TaskID("recent")))
	if n := w.sweep(ctx, insp); n != 1 {
		t.Fatalf("first sweep: got %d recorded, want 1", n)
	}
	c := asynq.NewClient(opt)
	defer c.Close()
	if _, err := c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{"eventId":"e"}`), asynq.TaskID("skewed")), asynq.Queue("crash")); err != nil {
		t.Fatal(err)
	}
	if err := insp.ArchiveTask("crash", "skewed"); err != nil {
		t.Fatal(err)
	}
	behind := float64(time.Now().Add(-time.Hour).Unix()) // the recoverer's clock
	if err := w.rc.ZAddXX(ctx, asynqkey.Archived("crash"), redis.Z{Score: behind, Member: "skewed"}).Err(); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		want int
	}{
		{"sweep after the skewed archive", 1},
		{"sweep again", 0},
	}
	for _, s := range steps {
		if n := w.sweep(ctx, insp); n != s.want {
			t.Errorf("%s: got %d recorded, want %d", s.name, n, s.want)
		}
	}
	if e, err := dl.Get(ctx, "skewed"); err != nil || e.State != deadletter.StateOpen {
		t.Errorf("skewed: got %+v, %v; want its open dead letter", e, err)
	}
	if err := insp.DeleteTask("crash", "recent"); err != nil {
		t.Fatal(err)
	}
	w.sweep(ctx, insp)
	if got := w.rc.ZRange(ctx, sweptKey("crash"), 0, -1).Val(); len(got) != 1 || got[0] != "skewed" {
		t.Errorf("swept after a job left the archive: got %v, want [skewed]", got)
	}
}

// A worker that died after its error handler wrote the dead letter, but
// before asynq archived the job (asynq's recoverer did, lease expired),
// may not have told the archive hooks (webhook redelivery): the sweep
// tells them, with the recorded error (SkipRetry for a permanent one),
// once. A job whose handler's run went through is not told again, nor is
// one whose record is no longer open.
func TestSweepTellsTheArchiveHooksOfAWorkerThatDiedAfterItsRecord(t *testing.T) {
	ctx := context.Background()
	opt := redisOpt(t, peertest.Redis(t))
	dl := deadLetters(t)
	now := time.Now()
	for _, e := range []deadletter.Entry{
		{ID: "died-after-record", Error: "webhook e1 to partner p: answered 503", Why: deadletter.WhyExhausted},
		{ID: "died-after-permanent", Error: "webhook e2: partner p answered 400", Why: deadletter.WhyPermanent},
		{ID: "died-after-requeue", Error: "webhook e3: answered 503", Why: deadletter.WhyExhausted},
		{ID: "handled", Error: "webhook e4: answered 503", Why: deadletter.WhyExhausted},
	} {
		e.Type, e.Queue, e.Attempts, e.FailedAt, e.Payload = "webhook_escrow_status_changed", "crash", 4, now, []byte(`{}`)
		if _, err := dl.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dl.MarkRequeued(ctx, "died-after-requeue", deadletter.Resolution{Actor: "jane", Reason: "partner back", At: now}); err != nil {
		t.Fatal(err)
	}
	archiveAsCrashed(t, opt, "crash",
		asynq.NewTask("webhook_escrow_status_changed", []byte(`{}`), asynq.TaskID("died-after-record")),
		asynq.NewTask("webhook_escrow_status_changed", []byte(`{}`), asynq.TaskID("died-after-permanent")),
		asynq.NewTask("webhook_escrow_status_changed", []byte(`{}`), asynq.TaskID("died-after-requeue")))
	c := asynq.NewClient(opt)
	defer c.Close()
	if _, err := c.Enqueue(asynq.NewTask("webhook_escrow_status_changed", []byte(`{}`), asynq.TaskID("handled")), asynq.Queue("crash")); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	if err := insp.ArchiveTask("crash", "handled"); err != nil { // as the handler's run archives it
		t.Fatal(err)
	}

	told := map[string][]error{}
	w := newWorker(t, Config{Redis: opt, DeadLetters: dl, Archived: func(_ context.Context, id, _ string, _ []byte, err error) {
		told[id] = append(told[id], err)
	}}, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	t.Cleanup(func() { w.rc.Close() })
	for range 2 {
		if n := w.sweep(ctx, insp); n != 0 {
			t.Errorf("got %d recorded by the sweep, want 0 (the ledger had them all)", n)
		}
	}
	tests := []struct {
		id        string
		want      string // the error told, "" for not told
		permanent bool
	}{
		{"died-after-record", "webhook e1 to partner p: answered 503", false},
		{"died-after-permanent", "webhook e2: partner p answered 400", true},
		{"died-after-requeue", "", false},
		{"handled", "", false},
	}
	for _, tt := range tests {
		got := told[tt.id]
		switch {
		case tt.want == "" && len(got) != 0:
			t.Errorf("%s: told %d times (%v), want not told", tt.id, len(got), got)
		case tt.want == "":
		case len(got) != 1:
			t.Errorf("%s: told %d times, want once over two sweeps", tt.id, len(got))
		case !strings.HasPrefix(got[0].Error(), tt.want) || errors.Is(got[0], asynq.SkipRetry) != tt.permanent:
			t.Errorf("%s: told %q (SkipRetry %v), want %q (SkipRetry %v)", tt.id, got[0], errors.Is(got[0], asynq.SkipRetry), tt.want, tt.permanent)
		}
	}
}
