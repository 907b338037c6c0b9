package escrowtest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Leased sees a job while a worker holds it (active, with a lease) and
// nothing once it completed: NoLeases, the "nothing can be doubled any
// more" proof of the fault suites, fails while a rerun is still possible.
func TestLeasedSeesAJobInFlightAndNothingAfterItCompleted(t *testing.T) {
	opt := escrowtest.RedisOpt(t, map[string]string{"REDIS_URL": peertest.Redis(t)})
	client, insp := tasks.NewClient(opt), tasks.NewInspector(opt)
	t.Cleanup(func() { client.Close(); insp.Close() })
	a := escrowtest.NewAdapters()
	a.Hold()
	escrowtest.StartWorker(t, escrowtest.WorkerConfig{Redis: opt, Adapters: a, Enqueuer: client})
	task := escrowtest.Task(t, escrowtest.Direct("lease", 0))
	if _, err := client.Enqueue(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	escrowtest.Eventually(t, "the job is held in its handler", 10*time.Second, func() bool { return len(a.Held()) == 1 })
	q := task.Queue
	if got, want := escrowtest.Leased(t, opt), []string{q + " active 1", q + " lease 1"}; !slices.Equal(got, want) {
		t.Errorf("while held: got %q, want %q", got, want)
	}
	a.Release()
	escrowtest.AwaitState(t, insp, task.ID, "completed", 10*time.Second)
	if got := escrowtest.Leased(t, opt); len(got) != 0 {
		t.Errorf("after completion: got %q, want nothing", got)
	}
	if got := a.Calls(task.ID); got != 1 {
		t.Errorf("got %d adapter calls, want 1", got)
	}
}
