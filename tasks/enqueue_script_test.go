package tasks

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// shaRecorder notes the SHA-1 of every EVALSHA asynq sends with two keys,
// by the second key's kind (pending, scheduled).
type shaRecorder struct {
	mu   sync.Mutex
	shas map[string]string
}

func (r *shaRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *shaRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (r *shaRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if keys, _, ok := asynqkey.Script(cmd.Args(), 2, 3); ok && cmd.Args()[0] == "evalsha" {
			list, _ := keys[1].(string)
			for _, kind := range []string{"pending", "scheduled"} {
				if _, ok := asynqkey.QueueOf(list, kind); ok {
					r.mu.Lock()
					r.shas[kind], _ = cmd.Args()[1].(string)
					r.mu.Unlock()
				}
			}
		}
		return next(ctx, cmd)
	}
}

// enqueueScript stands in for asynq's enqueue and schedule scripts: the
// asynq in go.mod sends the scripts whose SHA-1s the wake publisher
// recognises, and a job stored by enqueueScript is what asynq's own
// script stores (the task hash's fields, the pending list, the scheduled
// set and its score), refused the same way when its ID exists. After an
// asynq upgrade that changes either script this fails, and until the
// constants and enqueueScript follow, the new scripts go to Redis as they
// are (with the pipeline of the history line and the wake-up).
func TestEnqueueScriptStoresWhatAsynqStores(t *testing.T) {
	ctx := context.Background()
	side := func() (*redis.Client, *asynq.Client, *shaRecorder) {
		u := peertest.Redis(t)
		opt, err := asynq.ParseRedisURI(u)
		if err != nil {
			t.Fatal(err)
		}
		rc := opt.MakeRedisClient().(*redis.Client)
		rec := &shaRecorder{shas: map[string]string{}}
		rc.AddHook(rec)
		t.Cleanup(func() { rc.Close() })
		return peertest.RedisClient(t, u), asynq.NewClientFromRedisClient(rc), rec
	}
	rawRC, raw, rec := side()
	oursRC, _, _ := side()
	ours := NewClient(asynq.RedisClientOpt{Addr: oursRC.Options().Addr})
	defer ours.Close()

	due := time.Now().Add(time.Hour).Truncate(time.Second)
	tasks := []*asynq.Task{
		asynq.NewTask("probe", []byte(`{"a":1}`), asynq.TaskID("pending-job"), asynq.Queue("q"), asynq.MaxRetry(3)),
		asynq.NewTaskWithHeaders("probe", []byte(`{"b":2}`), map[string]string{"h": "v"}, asynq.TaskID("scheduled-job"), asynq.Queue("q"), asynq.ProcessAt(due)),
	}
	for _, task := range tasks {
		if _, err := raw.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		if _, err := ours.c.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Enqueue(task); !errors.Is(err, asynq.ErrTaskIDConflict) {
			t.Fatalf("raw asynq, enqueue again: got %v, want ErrTaskIDConflict", err)
		}
		if _, err := ours.c.Enqueue(task); !errors.Is(err, asynq.ErrTaskIDConflict) {
			t.Errorf("enqueueScript, enqueue again: got %v, want ErrTaskIDConflict", err)
		}
	}
	if got := rec.shas; got["pending"] != asynqEnqueueSHA || got["scheduled"] != asynqScheduleSHA {
		t.Errorf("asynq's scripts: got %v, want pending %s and scheduled %s (asynqEnqueueSHA, asynqScheduleSHA)", got, asynqEnqueueSHA, asynqScheduleSHA)
	}
	for _, id := range []string{"pending-job", "scheduled-job"} {
		want, got := rawRC.HGetAll(ctx, asynqkey.Task("q", id)).Val(), oursRC.HGetAll(ctx, asynqkey.Task("q", id)).Val()
		if len(want) == 0 || !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) ||
			got["msg"] != want["msg"] || got["state"] != want["state"] {
			t.Errorf("task hash of %s: got %q, want %q (pending_since aside)", id, got, want)
		}
		if _, err := strconv.ParseInt(got["pending_since"], 10, 64); want["pending_since"] != "" && err != nil {
			t.Errorf("pending_since of %s: got %q, want Unix nanoseconds", id, got["pending_since"])
		}
	}
	if want, got := rawRC.LRange(ctx, asynqkey.Pending("q"), 0, -1).Val(), oursRC.LRange(ctx, asynqkey.Pending("q"), 0, -1).Val(); !slices.Equal(got, want) {
		t.Errorf("pending list: got %q, want %q", got, want)
	}
	want, got := rawRC.ZRangeWithScores(ctx, asynqkey.Scheduled("q"), 0, -1).Val(), oursRC.ZRangeWithScores(ctx, asynqkey.Scheduled("q"), 0, -1).Val()
	if len(want) != 1 || !slices.Equal(got, want) {
		t.Errorf("scheduled set: got %v, want %v", got, want)
	}
	if info, err := NewInspector(asynq.RedisClientOpt{Addr: oursRC.Options().Addr}).Asynq().GetTaskInfo("q", "scheduled-job"); err != nil ||
		info.State != asynq.TaskStateScheduled || !info.NextProcessAt.Equal(due) || info.Headers["h"] != "v" {
		t.Errorf("asynq's view of the scheduled job: got %+v, %v; want scheduled at %s with its header", info, err, due)
	}
}

// A Redis that lost its scripts (a restart, SCRIPT FLUSH) gets the
// enqueue script's source once, and the job is stored and indexed.
func TestEnqueueAfterScriptFlushStoresAndIndexes(t *testing.T) {
	_, rc, in, c := indexRedis(t)
	ctx := context.Background()
	for i, pi := range []string{"pi_flush1", "pi_flush2"} {
		if err := rc.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		task := captureTask(t, "esc-flush", pi)
		if _, err := c.Enqueue(ctx, task); err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	wantHistory(t, in, "esc-flush", []string{"stripe_capture_payment:capture-pi_flush1", "stripe_capture_payment:capture-pi_flush2"}, []string{"pending", "pending"})
}
