package tasks

import (
	"context"
	"strconv"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/redis/go-redis/v9"
)

// WakeChannel is the pub/sub channel on which Client announces a job added
// to queue, so idle workers fetch it at once instead of at their next poll
// (SPEC §12). The queue's name is its hash tag, as in asynq's own keys, so
// on a Redis Cluster the channel (sharded pub/sub) lives on the node that
// holds the queue.
//
// The message is "p" for a job that is pending now, or "s" followed by the
// Unix second at which a scheduled job becomes due.
func WakeChannel(queue string) string { return "escrowjobs:wake:{" + queue + "}" }

// wakePublisher is a go-redis hook on the Client's connection. When asynq
// runs its enqueue or schedule script, the hook sends the script and a
// PUBLISH (SPUBLISH on a Cluster) of the job's queue in one pipeline: the
// wake-up costs no extra round trip, and Redis runs it after the script,
// so a worker that hears it finds the job. The same pipeline carries, ahead
// of the script, the escrow's history field of a job Client.Enqueue stores
// (indexEntry). A failed publish is ignored:
// workers still poll, so a lost wake-up costs at most one poll interval.
type wakePublisher struct {
	rc      redis.UniversalClient
	sharded bool
}

func newWakePublisher(rc redis.UniversalClient) *wakePublisher {
	_, cluster := rc.(*redis.ClusterClient)
	return &wakePublisher{rc: rc, sharded: cluster}
}

func (p *wakePublisher) DialHook(next redis.DialHook) redis.DialHook { return next }

func (p *wakePublisher) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (p *wakePublisher) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		queue, msg, ok := enqueuedQueue(cmd.Args())
		if !ok {
			return next(ctx, cmd)
		}
		pipe := p.rc.Pipeline()
		if ix, ok := ctx.Value(indexEntryKey{}).(*indexEntry); ok && ix.sent == nil {
			ix.add(ctx, pipe) // Client.Enqueue's history field, ahead of the job (history.go)
		}
		_ = pipe.Process(ctx, cmd)
		if p.sharded {
			pipe.SPublish(ctx, WakeChannel(queue), msg)
		} else {
			pipe.Publish(ctx, WakeChannel(queue), msg)
		}
		_, _ = pipe.Exec(ctx)
		return cmd.Err()
	}
}

// enqueuedQueue recognises asynq's enqueue script (KEYS: the task hash and
// the queue's pending list) and schedule script (the task hash and the
// scheduled set; ARGV[2] the due Unix second) and returns the queue and
// the wake-up message. Anything else, including a future asynq that
// enqueues differently, is not recognised: its jobs are found by polling.
func enqueuedQueue(args []any) (queue, msg string, ok bool) {
	keys, argv, ok := asynqkey.Script(args, 2, 2)
	if !ok {
		return "", "", false
	}
	task, _ := keys[0].(string)
	list, _ := keys[1].(string)
	queue, _, ok = asynqkey.ParseTask(task)
	if !ok {
		return "", "", false
	}
	switch list {
	case asynqkey.Pending(queue):
		return queue, "p", true
	case asynqkey.Scheduled(queue):
		var due int64
		switch v := argv[1].(type) {
		case int64:
			due = v
		case int:
			due = int64(v)
		default:
			return "", "", false
		}
		return queue, "s" + strconv.FormatInt(due, 10), true
	}
	return "", "", false
}
