package worker

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
)

// A rerun (retry count > 0) of a job whose completion marker is in Redis
// completes without running the handler again; without the marker it runs.
func TestRerunOfAFinishedJobDoesNothing(t *testing.T) {
	opt := redisOpt(t, peertest.Redis(t))
	calls := map[string]*atomic.Int32{"marked": {}, "unmarked": {}}
	var w *Worker
	w = newWorker(t, Config{Redis: opt, Concurrency: 2, FetchLoops: 1},
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
	start(t, w)
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
		waitFor(t, id+" completed", func() bool {
			info, err := insp.GetTaskInfo("default", id)
			return err == nil && info.State == asynq.TaskStateCompleted
		})
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
	opt := redisOpt(t, peertest.Redis(t))
	dl := deadLetters(t)
	archiveAsCrashed(t, opt, "default",
		asynq.NewTask("audit_log_created", []byte(`{}`), asynq.TaskID("finished")),
		asynq.NewTask("audit_log_created", []byte(`{}`), asynq.TaskID("crashed")))
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	w := sweeper(t, opt, dl)
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

// A completion marker written while Redis is down survives its worker:
// it is kept in the marker file, written to Redis by the next worker
// started on that file, and the file is emptied once Redis has it. A
// marker older than doneTTL is not replayed, nor a line torn by a crash.
func TestCompletionMarkerSurvivesARestartDuringAnOutage(t *testing.T) {
	ctx := context.Background()
	srv := peertest.StartRedis(t)
	opt := redisOpt(t, srv.URL())
	path := filepath.Join(t.TempDir(), "done-markers.jsonl")
	old, _ := json.Marshal(doneLine{ID: "old-job", Type: "audit_log_created", At: time.Now().Add(-doneTTL - time.Minute)})
	// and a line torn by a crash mid-write
	if err := os.WriteFile(path, append(append(old, '\n'), `{"id":"torn-jo`...), 0o600); err != nil {
		t.Fatal(err)
	}
	noop := asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })

	a := newWorker(t, Config{Redis: opt, DoneMarkersPath: path}, noop)
	srv.Kill()
	a.markDone("job-1", "audit_log_created") // the job finished while Redis is down
	a.done.close()                           // and the process dies before Redis is back
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), `"id":"job-1"`) {
		t.Fatalf("marker file after the outage: got %q, %v; want job-1 in it", b, err)
	}

	srv.Start()
	start(t, newWorker(t, Config{Redis: opt, Concurrency: 1, FetchLoops: 1, DoneMarkersPath: path}, noop))
	rc := redisClient(t, srv.URL())
	waitFor(t, "job-1's marker in Redis", func() bool { return rc.Exists(ctx, doneKey("job-1")).Val() == 1 })
	if ttl := rc.TTL(ctx, doneKey("job-1")).Val(); ttl <= 0 || ttl > doneTTL {
		t.Errorf("marker TTL: got %s, want (0, %s]", ttl, doneTTL)
	}
	if n := rc.Exists(ctx, doneKey("torn-jo")).Val(); n != 0 {
		t.Errorf("a torn line was replayed")
	}
	if n := rc.Exists(ctx, doneKey("old-job")).Val(); n != 0 {
		t.Errorf("a marker older than %s was replayed", doneTTL)
	}
	waitFor(t, "the marker file emptied", func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() == 0
	})
}

// Worker processes given one marker path (the default sits next to the
// dead-letter file, which they share) each keep their own file: one that
// empties its file does not erase another's markers, a starting worker
// does not take the markers of a running one, and one that starts after
// the others stopped writes all their markers to Redis.
func TestWorkersSharingAMarkerPathKeepEachOthersMarkers(t *testing.T) {
	ctx := context.Background()
	srv := peertest.StartRedis(t)
	opt := redisOpt(t, srv.URL())
	path := filepath.Join(t.TempDir(), "done-markers.jsonl")
	second := filepath.Join(filepath.Dir(path), "done-markers-2.jsonl")
	noop := asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })
	fileHas := func(file, id string) bool {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(b), `"id":"`+id+`"`)
	}

	a := newWorker(t, Config{Redis: opt, DoneMarkersPath: path}, noop)
	b := newWorker(t, Config{Redis: opt, DoneMarkersPath: path}, noop)
	if a.done.path != path || b.done.path != second {
		t.Fatalf("files: got %q and %q, want %q and %q", a.done.path, b.done.path, path, second)
	}
	srv.Kill()
	b.markDone("job-b", "audit_log_created")
	a.markDone("job-a1", "audit_log_created")
	a.done.remove("job-a1") // a's marker reached Redis: a empties its file
	if !fileHas(second, "job-b") {
		t.Fatal("b's marker is gone from disk after a emptied its file")
	}
	a.markDone("job-a2", "audit_log_created")
	a.done.close() // a dies during the outage

	c := newWorker(t, Config{Redis: opt, DoneMarkersPath: path}, noop)
	if got := slices.Sorted(maps.Keys(c.done.snapshot())); !slices.Equal(got, []string{"job-a2"}) {
		t.Errorf("a worker started beside a running one: got markers %q, want only the stopped one's [job-a2]", got)
	}
	if !fileHas(second, "job-b") {
		t.Error("a starting worker took the markers of a running one")
	}
	b.done.close()
	c.done.close() // every process gone; Redis still down

	srv.Start()
	d := start(t, newWorker(t, Config{Redis: opt, Concurrency: 1, FetchLoops: 1, DoneMarkersPath: path}, noop))
	if d.done.path != path {
		t.Errorf("the one worker left: got file %q, want %q", d.done.path, path)
	}
	rc := redisClient(t, srv.URL())
	for _, id := range []string{"job-a2", "job-b"} {
		waitFor(t, id+"'s marker in Redis", func() bool { return rc.Exists(ctx, doneKey(id)).Val() == 1 })
	}
	waitFor(t, "both marker files emptied", func() bool {
		for _, f := range []string{path, second} {
			if fi, err := os.Stat(f); err != nil || fi.Size() != 0 {
				return false
			}
		}
		return true
	})
}

func TestMarkerFileNames(t *testing.T) {
	for _, tc := range []struct {
		path string
		n    int
		want string
	}{
		{"/var/lib/escrowjobs/done-markers.jsonl", 1, "/var/lib/escrowjobs/done-markers.jsonl"},
		{"/var/lib/escrowjobs/done-markers.jsonl", 2, "/var/lib/escrowjobs/done-markers-2.jsonl"},
		{"markers", 3, "markers-3"},
		{"/data/m.v1.jsonl", 12, "/data/m.v1-12.jsonl"},
	} {
		if got := markerFile(tc.path, tc.n); got != tc.want {
			t.Errorf("markerFile(%q, %d): got %q, want %q", tc.path, tc.n, got, tc.want)
		}
	}
}
