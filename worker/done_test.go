package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/internal/testenv"
	"github.com/hibiken/asynq"
)

func doneSetup(t *testing.T) (asynq.RedisConnOpt, *deadletter.File, *slog.Logger) {
	t.Helper()
	opt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	dl, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dl.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	return opt, dl, slog.New(slog.NewTextHandler(io.Discard, nil))
}

// A rerun (retry count > 0) of a job whose completion marker is in Redis
// completes without running the handler again; without the marker it runs.
func TestRerunOfAFinishedJobDoesNothing(t *testing.T) {
	opt, dl, log := doneSetup(t)
	calls := map[string]*atomic.Int32{"marked": {}, "unmarked": {}}
	var w *Worker
	w, err := New(Config{Redis: opt, Concurrency: 2, FetchLoops: 1, DeadLetters: dl, Logger: log},
		asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			if calls[id].Add(1) == 1 {
				if id == "marked" {
					// The effect happened, but asynq records a failure
					// (as when the outcome write is lost); the marker says done.
					w.markDone(id, "audit_log_created")
				}
				return errors.New("outcome lost")
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	c := asynq.NewClient(opt)
	defer c.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	for id := range calls {
		if _, err := c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{}`), asynq.TaskID(id), asynq.Retention(time.Hour), asynq.MaxRetry(3))); err != nil {
			t.Fatal(err)
		}
	}
	for id := range calls {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if info, err := insp.GetTaskInfo("default", id); err == nil && info.State == asynq.TaskStateCompleted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not completed within 20 s", id)
			}
		}
	}
	for id, want := range map[string]int32{"marked": 1, "unmarked": 2} {
		if got := calls[id].Load(); got != want {
			t.Errorf("%s: got %d handler runs, want %d", id, got, want)
		}
	}
}

// A job asynq's recoverer archived although it had finished (its marker
// is in Redis) is not a dead letter: the sweep drops it from the archive.
func TestSweepSkipsFinishedJobs(t *testing.T) {
	opt, dl, log := doneSetup(t)
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 1, TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("%w: %w", asynq.ErrLeaseExpired, asynq.SkipRetry)
	})); err != nil {
		t.Fatal(err)
	}
	c := asynq.NewClient(opt)
	defer c.Close()
	for _, id := range []string{"finished", "crashed"} {
		if _, err := c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{}`), asynq.TaskID(id))); err != nil {
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
	w, err := New(Config{Redis: opt, DeadLetters: dl, Logger: log}, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer w.rc.Close()
	w.markDone("finished", "audit_log_created")
	if got := w.sweep(context.Background(), insp); got != 1 {
		t.Errorf("sweep: got %d recorded, want 1 (crashed)", got)
	}
	page, _ := dl.List(context.Background(), deadletter.Filter{}, "", 10)
	if entries := page.Entries; len(entries) != 1 || entries[0].ID != "crashed" || entries[0].Why != deadletter.WhyCrashed {
		t.Errorf("dead letters: got %+v, want only crashed", page.Entries)
	}
	if _, err := insp.GetTaskInfo("default", "finished"); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("finished: got %v, want it gone from the archive", err)
	}
}
