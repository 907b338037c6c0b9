package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// TestOutageLongerThanTheJobTimeoutDoublesNoEffect: four jobs (two mails,
// a webhook, an audit event) with a 3 s timeout finish their effect while
// Redis is down, and Redis stays down for 8 s, longer than the timeout.
// asynq cannot record their outcome: it counts them failed or leaves them
// active, and its recoverer runs them again once their lease has expired.
// The test waits until every job is completed (a completed job can no
// longer be recovered, so no later rerun is possible) and checks that each
// effect happened exactly once.
//
// Before the fix the worker held a finished job until Redis answered (up
// to 20 s), past the job's deadline: asynq counted each attempt failed and
// reran it after recovery, so each effect happened twice.
func TestOutageLongerThanTheJobTimeoutDoublesNoEffect(t *testing.T) {
	t.Parallel() // waits out asynq's lease recovery (1-2 minutes)
	const timeout, outage = 3 * time.Second, 8 * time.Second
	srv := durableRedis(t)
	opt, client, insp := connect(t, map[string]string{"REDIS_URL": srv.URL()})
	raw := asynq.NewClient(opt)
	t.Cleanup(func() { raw.Close() })
	const slots = 4
	eff, _ := startWorker(t, opt, client, slots)
	eff.Hold()
	var acked []string
	want := map[string]bool{"send_release_email": true, "send_dispute_email": true, "webhook_escrow_status_changed": true, "audit_log_created": true}
	for i := 0; len(acked) < slots && i < 16; i++ {
		task := job(t, "outage", i)
		if !want[task.Type()] {
			continue
		}
		want[task.Type()] = false
		if _, err := raw.Enqueue(task.Task, asynq.Timeout(timeout)); err != nil {
			t.Fatalf("enqueue %s: %v", task.ID, err)
		}
		acked = append(acked, task.ID)
	}
	killed := killWhileHeld(t, srv, eff, slots, acked)
	time.Sleep(time.Until(killed.Add(outage)))
	srv.Start()
	t.Logf("Redis down for %v (job timeout %v)", time.Since(killed).Round(time.Millisecond), timeout)

	// Recovery: lease (30 s after its last extension) + 30 s cutoff + the
	// recoverer's one-minute tick; then the retry delay.
	restarted := time.Now()
	states := map[string]tasks.Job{}
	escrowtest.Eventually(t, "every job completed", 180*time.Second, func() bool {
		completed := 0
		for _, id := range acked {
			j, err := insp.Status(context.Background(), id)
			if err != nil {
				continue // Redis may still be loading
			}
			states[id] = j
			if j.State == "completed" {
				completed++
			}
		}
		return completed == len(acked)
	})
	out, lost, doubled := eff.Tally(acked)
	reruns := 0
	for _, id := range acked {
		done, _, _ := eff.Tally([]string{id})
		calls := eff.Calls(id)
		if calls != 1 || done != 1 {
			t.Errorf("%s: got %d adapter calls and %d effects, want 1 and 1", id, calls, done)
		}
		if states[id].Attempts > 1 {
			reruns++
		}
	}
	t.Logf("jobs in %d, effects out %d, lost %d, doubled %d; %d reran by asynq after the outage and found their completion marker; all completed %v after the restart",
		len(acked), out, len(lost), len(doubled), reruns, time.Since(restarted).Round(time.Second))
	if len(lost) > 0 || len(doubled) > 0 || out != len(acked) {
		t.Errorf("got %d effects for %d jobs; lost %v; doubled %v", out, len(acked), lost, doubled)
	}
}
