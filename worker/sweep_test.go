package worker

import (
	"context"
	"fmt"
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
