package testkit_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/testenv"
	"github.com/escrowjobs/escrowjobs/internal/testkit"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Leased sees a job while a worker holds it (active, with a lease) and
// nothing once it completed: NoLeases, the "nothing can be doubled any
// more" proof of the fault suites, fails while a rerun is still possible.
func TestLeasedSeesAJobInFlightAndNothingAfterItCompleted(t *testing.T) {
	opt := testkit.RedisOpt(t, map[string]string{"REDIS_URL": testenv.Redis(t)})
	client, insp := tasks.NewClient(opt), tasks.NewInspector(opt)
	t.Cleanup(func() { client.Close(); insp.Close() })
	a := testkit.NewAdapters()
	a.Hold()
	testkit.StartWorker(t, testkit.WorkerConfig{Redis: opt, Adapters: a, Enqueuer: client})
	task := testkit.Task(t, testkit.Direct("lease", 0))
	if _, err := client.Enqueue(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the job is held in its handler", 10*time.Second, func() bool { return len(a.Held()) == 1 })
	q := task.Queue
	if got, want := testkit.Leased(t, opt), []string{q + " active 1", q + " lease 1"}; !slices.Equal(got, want) {
		t.Errorf("while held: got %q, want %q", got, want)
	}
	a.Release()
	testkit.AwaitState(t, insp, task.ID, "completed", 10*time.Second)
	if got := testkit.Leased(t, opt); len(got) != 0 {
		t.Errorf("after completion: got %q, want nothing", got)
	}
	if got := a.Calls(task.ID); got != 1 {
		t.Errorf("got %d adapter calls, want 1", got)
	}
}
