package worker

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// emptyFresh is how long a queue found empty stays known empty: for that
// long no fetch loop runs its dequeue script. A job enqueued meanwhile waits
// at most this much longer (less than the 10 ms poll when all are idle).
const emptyFresh = time.Millisecond

// emptyQueues is a go-redis hook on the worker's client that spares Redis
// the dequeue scripts of empty queues.
//
// asynq dequeues with one Lua script per queue (EVALSHA, and EXISTS and
// RPOPLPUSH inside it: three commands), trying the queues in weighted
// random order until one returns a job. With three queues an idle poll
// costs nine commands (900/s at the 10 ms poll), and under load every
// dequeue that first tries a drained queue costs a round trip for nothing.
//
// The hook answers such a script with the script's own answer for an empty
// queue (redis.Nil) when the queue was found empty less than emptyFresh
// ago. When that is older, one EXISTS over every queue due for a look (just
// this one on a Cluster, whose queues live in different slots) decides:
// none holds a job, all are known empty again; any does, all run their
// scripts. A queue whose last script returned a job, or that was never
// looked at, runs its script at once; so does every queue after an error.
// Every other command passes through untouched.
type emptyQueues struct {
	rc      redis.UniversalClient
	cluster bool

	mu    sync.Mutex
	empty map[string]time.Time // pending list → when it was last found empty
}

func newEmptyQueues(rc redis.UniversalClient) *emptyQueues {
	_, cluster := rc.(*redis.ClusterClient)
	return &emptyQueues{rc: rc, cluster: cluster, empty: map[string]time.Time{}}
}

func (e *emptyQueues) DialHook(next redis.DialHook) redis.DialHook { return next }

func (e *emptyQueues) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (e *emptyQueues) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		pending, ok := dequeuedList(cmd.Args())
		if !ok {
			return next(ctx, cmd)
		}
		if e.knownEmpty(ctx, pending) {
			return redis.Nil
		}
		err := next(ctx, cmd)
		e.mu.Lock()
		if err == redis.Nil {
			e.empty[pending] = time.Now()
		} else {
			delete(e.empty, pending)
		}
		e.mu.Unlock()
		return err
	}
}

// dequeuedList recognises asynq's dequeue script by its four keys (the
// pending, paused, active and lease lists of one queue) and returns the
// pending list. Anything else, including a future asynq that dequeues
// differently, is not recognised and passes through.
func dequeuedList(args []any) (string, bool) {
	if len(args) < 7 {
		return "", false
	}
	if name, _ := args[0].(string); name != "evalsha" && name != "eval" {
		return "", false
	}
	if n, _ := args[2].(int); n != 4 {
		return "", false
	}
	for i, suffix := range [4]string{":pending", ":paused", ":active", ":lease"} {
		k, _ := args[3+i].(string)
		if !strings.HasPrefix(k, "asynq:{") || !strings.HasSuffix(k, suffix) {
			return "", false
		}
	}
	return args[3].(string), true
}

// knownEmpty reports whether the pending list is known to be empty: found
// so less than emptyFresh ago, or found so again now by EXISTS.
func (e *emptyQueues) knownEmpty(ctx context.Context, pending string) bool {
	now := time.Now()
	e.mu.Lock()
	at, ok := e.empty[pending]
	if !ok || now.Sub(at) < emptyFresh {
		e.mu.Unlock()
		return ok
	}
	probe := []string{pending}
	if !e.cluster {
		for k, at := range e.empty {
			if k != pending && now.Sub(at) >= emptyFresh {
				probe = append(probe, k)
			}
		}
	}
	e.mu.Unlock()

	n, err := e.rc.Exists(ctx, probe...).Result()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range probe {
		if err == nil && n == 0 {
			e.empty[k] = now
		} else {
			delete(e.empty, k)
		}
	}
	return err == nil && n == 0
}
