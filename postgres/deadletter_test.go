package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/deadletter/ledgertest"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/postgres"
	"github.com/escrowjobs/escrowjobs/worker"
)

func TestDeadLetterConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) deadletter.Ledger { return setup(t).DeadLetters() })
}

func TestDeadLettersOddBytes(t *testing.T) {
	tests := []struct {
		name      string
		payload   json.RawMessage
		lastError string
		wantError string
	}{
		{"json object", json.RawMessage(`{"a":1,  "b" : 2}`), "boom", "boom"},
		{"empty payload", nil, "boom", "boom"},
		{"not json", json.RawMessage(`not json`), "boom", "boom"},
		{"jsonb-refused escape", json.RawMessage(`{"a":"\u0000"}`), "boom", "boom"},
		{"bad UTF-8 in the payload", json.RawMessage("{\"a\":\"\xff\"}"), "boom", "boom"},
		{"NUL and bad UTF-8 in text", json.RawMessage(`{}`), "a\x00b\xffc", "a\uFFFDb\uFFFDc"},
	}
	dl := setup(t).DeadLetters()
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("job-%d", i)
			e := deadletter.Entry{ID: id, Type: "t", Queue: "q", Payload: tt.payload, Error: tt.lastError, Attempts: 1, FailedAt: time.Now()}
			if ok, err := dl.Record(ctx, e); err != nil || !ok {
				t.Fatalf("Record: got %v, %v", ok, err)
			}
			got, err := dl.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Payload) != string(tt.payload) || got.Error != tt.wantError {
				t.Errorf("got payload %q, error %q; want %q exactly, %q", got.Payload, got.Error, tt.payload, tt.wantError)
			}
		})
	}
}

// Rows written before the ledger (masked payload, no state) read as open
// dead letters after Migrate.
func TestDeadLettersMigratesOldRows(t *testing.T) {
	url := peertest.Postgres(t)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, sql := range []string{
		`CREATE TABLE dead_letters (id bigserial PRIMARY KEY, job_id text NOT NULL, type text NOT NULL, queue text NOT NULL,
			payload jsonb, last_error text NOT NULL, attempts integer NOT NULL, permanent boolean NOT NULL, archived_at timestamptz NOT NULL)`,
		`INSERT INTO dead_letters (job_id, type, queue, payload, last_error, attempts, permanent, archived_at)
			VALUES ('old-1', 'audit_log_created', 'low', '{"eventId":"e"}', 'boom', 4, true, '2026-01-01T00:00:00Z')`,
	} {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	db := open(t, url)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	e, err := db.DeadLetters().Get(context.Background(), "old-1")
	if err != nil || e.State != deadletter.StateOpen || e.Why != deadletter.WhyPermanent || string(e.Payload) != `{"eventId": "e"}` || !e.PayloadInexact {
		t.Errorf("got %+v, %v; want an open, permanent dead letter with its (masked, so inexact) payload", e, err)
	}
}

// hung is a dead-letter ledger in PostgreSQL whose table another session
// holds locked, behind a Fallback to a spill file that gives up on it
// after 300 ms.
type hung struct {
	db    *postgres.DB
	fb    *deadletter.Fallback
	spill *deadletter.File
	logs  *peertest.Buffer // the Fallback's log (JSON)
	lock  pgx.Tx           // Rollback releases the table; rolled back at cleanup
}

func hungLedger(t *testing.T) *hung {
	t.Helper()
	url := peertest.Postgres(t)
	h := &hung{db: open(t, url), logs: &peertest.Buffer{}}
	if err := h.db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	spill, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "spill.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spill.Close() })
	h.spill = spill
	h.fb = &deadletter.Fallback{Primary: h.db.DeadLetters(), Spill: spill, Timeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(h.logs, nil))}

	locker, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locker.Close(context.Background()) })
	h.lock, err = locker.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.lock.Rollback(context.Background()) })
	if _, err := h.lock.Exec(context.Background(), `LOCK TABLE dead_letters IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSpilledDeadLetterReachesTheDatabaseSoonAfterItAnswers: Run, with an
// interval of an hour, moves a record spilled while the table was locked
// to PostgreSQL within seconds of the lock's release (SpillRetry), not at
// its next interval: the dead-letter list an operator reads is the
// database's. Without the spill's signal to Run the record would wait the
// hour.
func TestSpilledDeadLetterReachesTheDatabaseSoonAfterItAnswers(t *testing.T) {
	h := hungLedger(t)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); h.fb.Run(ctx, time.Hour) }()
	t.Cleanup(func() { cancel(); <-ran })

	e := deadletter.Entry{ID: "stripe_capture_payment:spilled", Type: "stripe_capture_payment", Queue: "critical",
		Payload: json.RawMessage(`{"transactionId":"esc-1"}`), Why: deadletter.WhyPermanent, FailedAt: time.Now()}
	if _, err := h.fb.Record(context.Background(), e); err != nil {
		t.Fatalf("Record: %v", err)
	}
	if _, err := h.spill.Get(context.Background(), e.ID); err != nil {
		t.Fatalf("spill: %v; want the record there while the table is locked", err)
	}
	time.Sleep(2 * deadletter.SpillRetry) // Run tries (and waits on the lock) meanwhile
	if err := h.lock.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	escrowtest.Eventually(t, "the spilled record in PostgreSQL", 30*time.Second, func() bool {
		got, err := h.db.DeadLetters().Get(context.Background(), e.ID)
		return err == nil && got.State == deadletter.StateOpen
	})
	escrowtest.Eventually(t, "the spill emptied", 10*time.Second, func() bool {
		p, err := h.spill.List(context.Background(), deadletter.Filter{State: deadletter.StateOpen}, "", 10)
		return err == nil && len(p.Entries) == 0
	})
	if n := strings.Count(h.logs.String(), "dead-letter spill not flushed yet"); n > 1 {
		t.Errorf("got %d \"not flushed yet\" lines, want at most one an interval", n)
	}
}

// A database that hangs (another session holds a lock on dead_letters)
// does not hold the worker: the write gives up after the timeout, the
// record goes to the spill file with a log line, and reaches PostgreSQL
// once the lock is gone.
func TestDeadLetterWriteToAHungDatabaseFallsBack(t *testing.T) {
	h := hungLedger(t)
	e := deadletter.Entry{ID: "send_release_email:hung", Type: "send_release_email", Queue: "default",
		Payload: json.RawMessage(`{"recipientEmail":"jane@bücher.de"}`), Why: deadletter.WhyExhausted, FailedAt: time.Now()}
	done := make(chan error, 1)
	go func() { _, err := h.fb.Record(context.Background(), e); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Record: %v", err)
		}
	case <-time.After(time.Minute): // a hang detector, not a timing claim
		t.Fatal("Record still blocked on the locked table after a minute")
	}
	if !strings.Contains(h.logs.String(), "dead-letter ledger write failed; kept in the spill file") || strings.Contains(h.logs.String(), "jane@") {
		t.Errorf("got logs %s, want the fallback said, without the address", h.logs.String())
	}
	if got, err := h.spill.Get(context.Background(), e.ID); err != nil || string(got.Payload) != string(e.Payload) {
		t.Fatalf("spill: got %+v, %v; want the record with its exact payload", got, err)
	}
	// Still hung: a flush fails and keeps the record.
	fctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if n, err := h.fb.Flush(fctx); err == nil || n != 0 {
		t.Errorf("Flush while hung: got %d, %v; want 0 and an error", n, err)
	}
	cancel()
	if err := h.lock.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, err := h.fb.Flush(context.Background()); err != nil || n != 1 {
		t.Fatalf("Flush: got %d, %v; want 1, nil", n, err)
	}
	got, err := h.db.DeadLetters().Get(context.Background(), e.ID)
	if err != nil || string(got.Payload) != string(e.Payload) || got.State != deadletter.StateOpen {
		t.Errorf("PostgreSQL: got %+v, %v; want the open record", got, err)
	}
	if p, _ := h.spill.List(context.Background(), deadletter.Filter{}, "", 10); len(p.Entries) != 0 {
		t.Errorf("spill after flush: got %d entries, want none", len(p.Entries))
	}
	if ok, err := h.fb.Record(context.Background(), e); ok || err != nil {
		t.Errorf("recording it again: got %v, %v; want a no-op", ok, err)
	}
}

// A worker whose dead-letter database hangs keeps processing: with one
// worker slot, three jobs fail permanently one after another, each record
// goes to the spill file after the write timeout, and the worker shuts
// down without waiting for the database.
func TestWorkerKeepsProcessingWhileTheLedgerDatabaseHangs(t *testing.T) {
	h := hungLedger(t)
	opt, err := asynq.ParseRedisURI(peertest.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Redis: opt, DeadLetters: h.fb, Logger: h.fb.Logger, Concurrency: 1, FetchLoops: 1, ShutdownTimeout: time.Second},
		asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return fmt.Errorf("refused: %w", asynq.SkipRetry) }))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	c := asynq.NewClient(opt)
	defer c.Close()
	for i := range 3 {
		if _, err := c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{}`), asynq.TaskID(fmt.Sprint("hung-", i)))); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) { // a hang detector
		if p, _ := h.spill.List(context.Background(), deadletter.Filter{}, "", 10); len(p.Entries) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spill file did not get the 3 records; logs:\n%s", h.logs.String())
		}
	}
	stopped := make(chan struct{})
	go func() { w.Shutdown(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("the worker did not shut down while the database hangs")
	}
	if n := strings.Count(h.logs.String(), "dead-letter ledger write failed; kept in the spill file"); n != 3 {
		t.Errorf("got %d fallback log lines, want 3", n)
	}
}

// Two failures of one job ID spilled while the database hung (the job
// failed, was requeued and failed again), a page of the spill apart, both
// reach PostgreSQL: a flush moves failures, not job IDs. The spill is the File itself (which
// resolves one failure at a time) or a ledger that resolves by job ID
// only.
func TestFlushMovesEveryFailureOfAJob(t *testing.T) {
	tests := []struct {
		name  string
		spill func(*deadletter.File) deadletter.Ledger
	}{
		{"file spill", func(f *deadletter.File) deadletter.Ledger { return f }},
		{"spill resolving by job ID", func(f *deadletter.File) deadletter.Ledger { return struct{ deadletter.Ledger }{f} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hungLedger(t)
			h.fb.Spill = tt.spill(h.spill)
			ctx := context.Background()
			const id = "webhook_escrow_status_changed:twice"
			first := time.Now().Add(-time.Minute)
			for i, e := range []deadletter.Entry{
				{ID: id, Type: "webhook_escrow_status_changed", Queue: "default", Payload: json.RawMessage(`{"n":1}`), Why: deadletter.WhyExhausted, FailedAt: first},
				{ID: id, Type: "webhook_escrow_status_changed", Queue: "default", Run: "run-2", Payload: json.RawMessage(`{"n":1}`), Why: deadletter.WhyExhausted, FailedAt: first.Add(30 * time.Second)},
			} {
				if ok, err := h.fb.Record(ctx, e); err != nil || !ok {
					t.Fatalf("Record %d: got %v, %v; want true, nil", i, ok, err)
				}
			}
			// A page of other jobs' failures between the two, so the
			// older failure is on the flush's next page of the spill.
			for i := range 100 {
				e := deadletter.Entry{ID: fmt.Sprint("audit_log_created:other-", i), Type: "audit_log_created", Queue: "low",
					Payload: json.RawMessage(`{}`), Why: deadletter.WhyPermanent, FailedAt: first.Add(time.Duration(i+1) * 100 * time.Millisecond)}
				if _, err := h.spill.Record(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			if got, _ := h.spill.History(ctx, id); len(got) != 2 {
				t.Fatalf("spill: got %d entries of %s, want 2", len(got), id)
			}
			if err := h.lock.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if n, err := h.fb.Flush(ctx); err != nil || n != 102 {
				t.Fatalf("Flush: got %d, %v; want 102, nil", n, err)
			}
			got, err := h.db.DeadLetters().History(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var runs []string
			for _, e := range got {
				runs = append(runs, e.Run+"/"+e.State)
			}
			if want := []string{"run-2/open", "/open"}; strings.Join(runs, ",") != strings.Join(want, ",") {
				t.Errorf("PostgreSQL: got runs %q, want %q (both failures, open)", runs, want)
			}
			if p, _ := h.spill.List(ctx, deadletter.Filter{State: deadletter.StateOpen}, "", 10); len(p.Entries) != 0 {
				t.Errorf("spill after flush: got %d open entries, want none", len(p.Entries))
			}
		})
	}
}
