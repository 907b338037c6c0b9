package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/internal/testenv"
	"github.com/hibiken/asynq"
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for " + what)
		}
	}
}

// The sweep covers every archived job however many (far more than one
// page), records what the ledger lacks (a job asynq's recoverer archived
// after its worker died), and leaves what the error handler recorded as
// it is: each failure appears once, also when two workers sweep, and a
// second sweep records nothing.
func TestSweepRecordsEveryArchivedJobOnce(t *testing.T) {
	opt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	dl, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dl.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := asynq.NewClient(opt)
	defer c.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()

	// 1. Three permanent failures, recorded by the real worker's handler.
	w, err := New(Config{Redis: opt, DeadLetters: dl, Logger: log, Concurrency: 2, FetchLoops: 1}, asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("refused: %w", asynq.SkipRetry)
	}))
	if err != nil {
		t.Fatal(err)
	}
	w.sweepEvery = time.Hour // this test sweeps by hand
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{"eventId":"e"}`), asynq.TaskID(fmt.Sprint("handled-", i)))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the handler's records", func() bool { return len(ledgerIDs(t, dl)) == 3 })
	w.Shutdown()

	// 2. A job asynq's recoverer archived: stand in with a plain asynq
	// server failing it with the lease error (no ledger there).
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 1, TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel, Queues: map[string]int{"crash": 1}})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("%w: %w", asynq.ErrLeaseExpired, asynq.SkipRetry)
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{"eventId":"e","actor":"jane@bücher.de"}`), asynq.TaskID("lease-1"), asynq.Queue("crash"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the crash archive", func() bool { qi, err := insp.GetQueueInfo("crash"); return err == nil && qi.Archived == 1 })
	srv.Shutdown()

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
		w, err := New(Config{Redis: opt, DeadLetters: dl, Logger: log}, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
		if err != nil {
			t.Fatal(err)
		}
		total += w.sweep(context.Background(), insp)
		w.rc.Close()
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
	w2, _ := New(Config{Redis: opt, DeadLetters: dl, Logger: log}, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	defer w2.rc.Close()
	if n := w2.sweep(context.Background(), insp); n != 0 {
		t.Errorf("third sweep: got %d recorded, want 0", n)
	}
	if mark, err := w2.rc.Get(context.Background(), sweepMarkKey+"parked").Int64(); err != nil || mark == 0 {
		t.Errorf("got mark %d (%v), want the archive time persisted", mark, err)
	}
}
