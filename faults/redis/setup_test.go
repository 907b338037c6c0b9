package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// durableRedis starts an append-only Redis (fsync always) for a test that
// kills and restarts it.
func durableRedis(t *testing.T) *peertest.RedisServer {
	t.Helper()
	return peertest.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
}

// connect builds the Redis option from env the way the binaries do, and a
// client (with opts) and an inspector on it, closed at cleanup.
func connect(t *testing.T, env map[string]string, opts ...tasks.ClientOption) (asynq.RedisConnOpt, *tasks.Client, *tasks.Inspector) {
	t.Helper()
	opt := escrowtest.RedisOpt(t, env)
	client, insp := tasks.NewClient(opt, opts...), tasks.NewInspector(opt)
	t.Cleanup(func() { client.Close(); insp.Close() })
	return opt, client, insp
}

// startWorker starts the real worker on opt (concurrency slots, two fetch
// loops) over fresh recording adapters, fanning out through client, and
// returns the adapters and the worker's dead letters.
func startWorker(t *testing.T, opt asynq.RedisConnOpt, client *tasks.Client, slots int) (*escrowtest.Adapters, *deadletter.File) {
	t.Helper()
	eff := escrowtest.NewAdapters()
	dl := escrowtest.StartWorker(t, escrowtest.WorkerConfig{Redis: opt, Adapters: eff, Enqueuer: client, Concurrency: slots, FetchLoops: 2})
	return eff, dl
}

// killWhileHeld waits until each of the slots worker slots holds one of
// the acked jobs in its handler (eff.Hold), kills srv, lets the jobs
// finish and waits until each took effect, with Redis down. It returns
// the time of the kill.
func killWhileHeld(t *testing.T, srv *peertest.RedisServer, eff *escrowtest.Adapters, slots int, acked []string) time.Time {
	t.Helper()
	escrowtest.Eventually(t, "every worker slot holds a job", 10*time.Second, func() bool { return len(eff.Held()) == slots })
	srv.Kill()
	killed := time.Now()
	eff.Release()
	escrowtest.Eventually(t, "the held jobs took effect", 5*time.Second, func() bool {
		_, lost, _ := eff.Tally(acked)
		return len(lost) == 0
	})
	return killed
}

// occurredAt is the event time of the hand-built payloads.
const occurredAt = "2026-11-29T10:00:00Z"

// job builds job i of a series from the sample payloads: the eight types
// without fan-out in turn (so all three queues), every ID unique within
// the series and containing its name.
func job(t *testing.T, series string, i int, opts ...tasks.Option) *tasks.Task {
	t.Helper()
	return escrowtest.Task(t, escrowtest.Direct(series, i), opts...)
}

// queueTotals sums asynq's counts over all queues.
type queueTotals struct{ Pending, Active, Scheduled, Retry, Archived, Completed int }

func (q queueTotals) jobs() int {
	return q.Pending + q.Active + q.Scheduled + q.Retry + q.Archived + q.Completed
}

func totals(t *testing.T, insp *tasks.Inspector) queueTotals {
	t.Helper()
	var qs []tasks.QueueStats
	var err error
	for range 50 { // right after a restart the first commands may hit dead connections
		if qs, err = insp.Stats(context.Background()); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	var q queueTotals
	for _, s := range qs {
		q.Pending += s.Pending
		q.Active += s.Active
		q.Scheduled += s.Scheduled
		q.Retry += s.Retry
		q.Archived += s.Archived
		q.Completed += s.Completed
	}
	return q
}
