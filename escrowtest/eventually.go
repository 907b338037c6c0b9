package escrowtest

import (
	"context"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/tasks"
)

// poll is how often Eventually and AwaitState check their condition.
const poll = 20 * time.Millisecond

// Eventually polls cond every 20 ms until it holds, and fails the test with
// what when timeout passes first.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(poll)
	}
}

// AwaitState polls the job's state until it is want, and fails the test
// with the last state seen when timeout passes first.
func AwaitState(t testing.TB, insp *tasks.Inspector, id, want string, timeout time.Duration) tasks.Job {
	t.Helper()
	var j tasks.Job
	var err error
	deadline := time.Now().Add(timeout)
	for {
		if j, err = insp.Status(context.Background(), id); err == nil && j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: got state %q (last error %q, err %v), want %q within %s", id, j.State, j.LastError, err, want, timeout)
			return j
		}
		time.Sleep(poll)
	}
}
