package worker

import (
	"context"
	"errors"
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

// A job archived by asynq's recoverer (its worker died during the last
// attempt) reaches the dead-letter log once, however many workers sweep.
func TestSweepRecordsLeaseExpiredArchivesOnce(t *testing.T) {
	opt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	// Stand in for the recoverer: archive a job with asynq's lease error.
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 1, TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("%w: %w", asynq.ErrLeaseExpired, asynq.SkipRetry)
	})); err != nil {
		t.Fatal(err)
	}
	c := asynq.NewClient(opt)
	defer c.Close()
	for _, id := range []string{"lease-1", "failed-normally"} {
		if _, err := c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{"eventId":"e","actor":"a@example.com"}`), asynq.TaskID(id))); err != nil {
			t.Fatal(err)
		}
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if qi, err := insp.GetQueueInfo("default"); err == nil && qi.Archived == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("jobs were not archived")
		}
	}
	srv.Shutdown()
	// failed-normally was archived with another error: handleError's job.
	if err := insp.DeleteTask("default", "failed-normally"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(asynq.NewTask("audit_log_created", nil, asynq.TaskID("failed-normally"))); err != nil {
		t.Fatal(err)
	}
	if err := insp.ArchiveTask("default", "failed-normally"); err != nil {
		t.Fatal(err)
	}

	dl, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dl.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var total int
	for i := 0; i < 2; i++ { // two worker processes sweeping the same Redis
		w, err := New(Config{Redis: opt, DeadLetters: dl, Logger: log}, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return errors.New("unused") }))
		if err != nil {
			t.Fatal(err)
		}
		total += w.sweep(context.Background(), insp)
		w.rc.Close()
	}
	entries, _ := dl.List(context.Background(), 10)
	if total != 1 || len(entries) != 1 || entries[0].ID != "lease-1" || entries[0].Permanent {
		t.Fatalf("got %d recorded, entries %+v; want lease-1 once", total, entries)
	}
	if got := string(entries[0].Payload); got != `{"eventId":"e","actor":"a***@example.com"}` {
		t.Errorf("got payload %s, want the address masked", got)
	}
}
