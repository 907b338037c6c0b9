package worker

import (
	"context"
	"sync"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/redis/go-redis/v9"
)

// emptyQueues is a go-redis hook on the worker's client that spares Redis
// the dequeue scripts of empty queues and makes idle fetch loops wait for a
// wake-up instead of polling.
//
// asynq dequeues with one Lua script per queue (EVALSHA, and EXISTS and
// RPOPLPUSH inside it: three commands), trying the queues in weighted
// random order until one returns a job, and after a round that found
// nothing it sleeps TaskCheckInterval. The hook answers such a script with
// the script's own answer for an empty queue (redis.Nil) while the queue is
// known empty, and when every queue is known empty it holds the call
// (blocking that fetch loop) until a wake-up for a queue arrives (see
// wake.go) or the belief goes stale. A stale belief is checked with one
// EXISTS over every queue due for a look (just this one on a Cluster, whose
// queues live in different slots), shared by all the process's loops.
//
// A queue found empty stays known empty for the window: FallbackPoll while
// the process hears wake-ups for every queue, PollInterval otherwise. A
// wake-up for a queue ends its belief at once. A queue whose last script
// returned a job, or that was never looked at, runs its script at once;
// so does every queue after an error. Every other command passes through
// untouched, except asynq's forward script (delayedGate, wake.go).
type emptyQueues struct {
	rc      redis.UniversalClient
	cluster bool
	lists   []string // the pending list of every queue the worker serves

	wakePoll time.Duration // window while wake-ups are heard
	fastPoll time.Duration // window otherwise

	probeMu sync.Mutex // one EXISTS at a time; the others reuse its answer

	mu         sync.Mutex
	empty      map[string]time.Time // pending list → when it was last found empty
	gen        map[string]uint64    // pending list → wake-ups heard for it
	subscribed map[string]bool      // pending lists whose wake-ups are heard
	changed    chan struct{}        // closed at a wake-up when someone waits on it
	waiting    bool
	closed     bool
	delayed    delayedGate
}

// newEmptyQueues returns the hook for the given queues. With no wake-ups
// heard a queue found empty stays so for fastPoll; once they are heard
// (subscribed), for wakePoll.
func newEmptyQueues(rc redis.UniversalClient, queues []string, fastPoll, wakePoll time.Duration) *emptyQueues {
	_, cluster := rc.(*redis.ClusterClient)
	e := &emptyQueues{
		rc: rc, cluster: cluster, fastPoll: fastPoll, wakePoll: wakePoll,
		empty: map[string]time.Time{}, gen: map[string]uint64{}, subscribed: map[string]bool{},
		changed: make(chan struct{}),
		delayed: delayedGate{dues: map[string][]time.Time{}, last: map[string]time.Time{}, poll: delayedPoll},
	}
	for _, q := range queues {
		e.lists = append(e.lists, pendingKey(q))
	}
	return e
}

// maxHoldDequeue bounds one wait inside a dequeue call. asynq computes the
// lease of the job it may fetch (30 s) before it calls the script, and its
// heartbeat renews leases every 5 s: a wait of at most 5 s leaves the job
// at least 25 s, so it is never fetched with a lease already run out.
const maxHoldDequeue = 5 * time.Second

func pendingKey(queue string) string { return asynqkey.Pending(queue) }

func (e *emptyQueues) DialHook(next redis.DialHook) redis.DialHook { return next }

func (e *emptyQueues) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (e *emptyQueues) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if set, pending, ok := forwardedSet(cmd.Args()); ok {
			return e.forward(ctx, next, cmd, set, pending)
		}
		pending, ok := dequeuedList(cmd.Args())
		if !ok {
			return next(ctx, cmd)
		}
		for waited := false; ; waited = true {
			empty, g := e.knownEmpty(ctx, pending)
			if !empty {
				err := next(ctx, cmd)
				e.found(pending, g, err)
				return err
			}
			if waited || !e.wait(ctx) {
				return redis.Nil
			}
		}
	}
}

// found records the answer of pending's dequeue script, run when pending
// had heard g wake-ups: empty only if no wake-up came in the meantime (the
// job it announced may have landed after the script looked).
func (e *emptyQueues) found(pending string, g uint64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == redis.Nil && e.gen[pending] == g {
		e.empty[pending] = time.Now()
	} else {
		delete(e.empty, pending)
	}
}

// window is how long a queue found empty stays known empty (e.mu held).
func (e *emptyQueues) window() time.Duration {
	if len(e.subscribed) == len(e.lists) {
		return e.wakePoll
	}
	return e.fastPoll
}

// dequeuedList recognises asynq's dequeue script by its four keys (the
// pending, paused, active and lease lists of one queue) and returns the
// pending list. Anything else, including a future asynq that dequeues
// differently, is not recognised and passes through.
func dequeuedList(args []any) (string, bool) {
	keys, _, ok := asynqkey.Script(args, 4, 0)
	if !ok {
		return "", false
	}
	var queue string
	for i, suffix := range [4]string{"pending", "paused", "active", "lease"} {
		k, _ := keys[i].(string)
		q, ok := asynqkey.QueueOf(k, suffix)
		if !ok || (i > 0 && q != queue) {
			return "", false
		}
		queue = q
	}
	return keys[0].(string), true
}

// knownEmpty reports whether the pending list is known to be empty: found
// so within the window, or found so again now by EXISTS. It also returns
// how many wake-ups the list had heard before it was looked at.
func (e *emptyQueues) knownEmpty(ctx context.Context, pending string) (bool, uint64) {
	e.mu.Lock()
	g := e.gen[pending]
	at, ok := e.empty[pending]
	if !ok || time.Since(at) < e.window() {
		e.mu.Unlock()
		return ok, g
	}
	e.mu.Unlock()

	e.probeMu.Lock()
	defer e.probeMu.Unlock()
	now := time.Now()
	e.mu.Lock()
	g = e.gen[pending]
	at, ok = e.empty[pending]
	if w := e.window(); !ok || now.Sub(at) < w { // another loop looked meanwhile
		e.mu.Unlock()
		return ok, g
	}
	probe := []string{pending}
	if !e.cluster {
		for k, at := range e.empty {
			if k != pending && now.Sub(at) >= e.window() {
				probe = append(probe, k)
			}
		}
	}
	gens := make([]uint64, len(probe))
	for i, k := range probe {
		gens[i] = e.gen[k]
	}
	e.mu.Unlock()

	n, err := e.rc.Exists(ctx, probe...).Result()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, k := range probe {
		if err == nil && n == 0 && e.gen[k] == gens[i] {
			e.empty[k] = now
		} else {
			delete(e.empty, k)
		}
	}
	_, still := e.empty[pending]
	return still, g
}

// wait blocks while every queue is known empty: until a wake-up, until the
// first belief goes stale, maxHoldDequeue at most, or until close. It reports false, at once, when
// some queue is not known empty (the loop should go on to it) or after
// close.
func (e *emptyQueues) wait(ctx context.Context) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false
	}
	w, now := e.window(), time.Now()
	until := now.Add(w)
	for _, k := range e.lists {
		at, ok := e.empty[k]
		if !ok || now.Sub(at) >= w {
			e.mu.Unlock()
			return false
		}
		until = minTime(until, at.Add(w))
	}
	until = minTime(until, now.Add(maxHoldDequeue))
	ch := e.changed
	e.waiting = true
	e.mu.Unlock()

	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	return true
}

// wake ends the belief that pending is empty and releases waiting loops
// (e.mu held).
func (e *emptyQueues) wake(pending string) {
	e.gen[pending]++
	delete(e.empty, pending)
	e.signal()
}

// signal releases every waiting loop (e.mu held).
func (e *emptyQueues) signal() {
	if e.waiting {
		close(e.changed)
		e.changed, e.waiting = make(chan struct{}), false
	}
}

// heard is a wake-up for queue from the subscription.
func (e *emptyQueues) heard(queue string) {
	e.mu.Lock()
	e.wake(pendingKey(queue))
	e.mu.Unlock()
}

// setSubscribed records that queue's wake-ups are (or are no longer)
// heard. On a new subscription every belief ends: a job enqueued while no
// subscription was in place was announced to no one.
func (e *emptyQueues) setSubscribed(queue string, on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := pendingKey(queue)
	if !on {
		delete(e.subscribed, k)
		return
	}
	e.subscribed[k] = true
	for _, l := range e.lists {
		e.wake(l)
	}
}

// close releases every waiting loop for good: at shutdown asynq must see
// its fetch loops return.
func (e *emptyQueues) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	e.waiting = true
	e.signal()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// queues are the names of the queues served.
func (e *emptyQueues) queues() []string {
	out := make([]string, len(e.lists))
	for i, k := range e.lists {
		out[i], _ = asynqkey.QueueOf(k, "pending")
	}
	return out
}

// hearing reports whether wake-ups of every queue are heard.
func (e *emptyQueues) hearing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subscribed) == len(e.lists)
}
