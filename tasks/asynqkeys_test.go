package tasks_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
)

// The code reads and writes some of asynq's Redis keys by name, which asynq
// does not export, all through internal/asynqkey: the wake hook (pending,
// scheduled), requeue (t:<id>, pending, archived, asynq:queues), the worker
// (pending, retry, scheduled, archived), the lease proof in escrowtest
// (active, lease) and the partner wake script. This pins those names
// against the asynq in go.mod: after an upgrade that renames one, this test
// fails instead of wake-ups or requeues silently missing.
func TestAsynqKeyNamesTheCodeUses(t *testing.T) {
	ctx := context.Background()
	url := peertest.Redis(t)
	rc := peertest.RedisClient(t, url)
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	const q = "keys"
	c := asynq.NewClient(opt)
	defer c.Close()
	in := asynq.NewInspector(opt)
	defer in.Close()
	enqueue := func(id string, opts ...asynq.Option) {
		t.Helper()
		if _, err := c.Enqueue(asynq.NewTask("probe", nil), append([]asynq.Option{asynq.Queue(q), asynq.TaskID(id), asynq.MaxRetry(5)}, opts...)...); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("pending-job")
	enqueue("scheduled-job", asynq.ProcessIn(time.Hour))
	enqueue("grouped-job", asynq.Group("g")) // aggregating: no server here aggregates
	enqueue("archived-job")
	if err := in.ArchiveTask(q, "archived-job"); err != nil {
		t.Fatal(err)
	}
	// A server for a job that fails (retry) and one that runs (active, leased).
	enqueue("retry-job")
	enqueue("active-job")
	running := make(chan struct{})
	release := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency: 2, Queues: map[string]int{q: 1}, LogLevel: asynq.FatalLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
	})
	defer srv.Shutdown()
	// Only the two jobs the server should take: the others are not pending.
	if err := in.ArchiveTask(q, "pending-job"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		if id == "retry-job" {
			return errors.New("fail once")
		}
		close(running)
		<-release
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	defer close(release)
	<-running
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if info, err := in.GetTaskInfo(q, "retry-job"); err == nil && info.State == asynq.TaskStateRetry {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("retry-job never reached the retry state")
		}
	}
	srv.Stop()                                           // fetch no more, so pending-job stays pending
	if err := in.RunTask(q, "pending-job"); err != nil { // archived → pending again
		t.Fatal(err)
	}

	for _, tc := range []struct {
		key, member string
		kind        string // list, zset, hash, set
	}{
		{asynqkey.Pending(q), "pending-job", "list"},
		{asynqkey.Scheduled(q), "scheduled-job", "zset"},
		{asynqkey.Retry(q), "retry-job", "zset"},
		{asynqkey.Archived(q), "archived-job", "zset"},
		{asynqkey.Active(q), "active-job", "list"},
		{asynqkey.Lease(q), "active-job", "zset"},
		{asynqkey.Task(q, "pending-job"), "msg", "hash"},
		{asynqkey.Group(q, "g"), "grouped-job", "zset"},
		{asynqkey.Groups(q), "g", "set"},
		{asynqkey.AllQueues, q, "set"},
	} {
		var found bool
		switch tc.kind {
		case "list":
			ids, err := rc.LRange(ctx, tc.key, 0, -1).Result()
			found = err == nil && slices.Contains(ids, tc.member)
		case "zset":
			found = rc.ZScore(ctx, tc.key, tc.member).Err() == nil
		case "hash":
			found = rc.HExists(ctx, tc.key, tc.member).Val()
		case "set":
			found = rc.SIsMember(ctx, tc.key, tc.member).Val()
		}
		if !found {
			t.Errorf("%s %s: %s not in it; asynq's key names changed, update the code that names them", tc.kind, tc.key, tc.member)
		}
	}
}
