package worker

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
)

// Wake-up on enqueue (SPEC §12).
//
// tasks.Client publishes on tasks.WakeChannel(queue) in the same pipeline
// as each enqueue. The worker process holds one subscription to the
// channels of its queues (on a Cluster, one sharded subscription per
// queue, on the node that holds the queue) and hands every wake-up to the
// emptyQueues hook, which releases the fetch loops it holds. Nothing is
// lost when a wake-up is: the hook polls every FallbackPoll anyway.
//
// Scheduled and retry jobs are moved to their queue by asynq's forwarder,
// which runs a script per set (scheduled, retry) and queue. delayedGate
// answers those scripts "nothing to move" without running them unless a
// job of that set is known to be due (a retry this process scheduled, a
// scheduled job announced by tasks.Client) or delayedPoll has passed since
// the last real look; a script that moved jobs wakes the local loops and
// announces the queue to the other processes.

// delayedPoll is how often each scheduled and retry set is looked at when
// no job of it is known to be due: asynq's own default.
const delayedPoll = 5 * time.Second

// dueSlack is how long after a known due time its set keeps being looked
// at (every forwardInterval): asynq stores due times in whole seconds and
// moves a job once that second has begun.
const dueSlack = 1500 * time.Millisecond

// healthCheck is how long a subscription may stay silent before it is
// pinged; without an answer by the next healthCheck it is replaced. The
// wake-ups it missed cost at most FallbackPoll.
const healthCheck = 5 * time.Second

// delayedGate decides which forward scripts run (guarded by emptyQueues.mu).
type delayedGate struct {
	dues map[string][]time.Time // set key → known due times
	last map[string]time.Time   // set key → last look that moved nothing
	poll time.Duration
}

// open reports whether the forward script of set should run now, and
// forgets due times long past.
func (g *delayedGate) open(set string, now time.Time) bool {
	last, ok := g.last[set]
	open := !ok || now.Sub(last) >= g.poll
	kept := g.dues[set][:0]
	for _, d := range g.dues[set] {
		if now.After(d.Add(dueSlack)) {
			continue
		}
		kept = append(kept, d)
		if !now.Before(d.Truncate(time.Second)) {
			open = true
		}
	}
	if len(kept) == 0 {
		delete(g.dues, set)
	} else {
		g.dues[set] = kept
	}
	return open
}

// expect records that a job of set is due at d.
func (g *delayedGate) expect(set string, d time.Time) {
	g.dues[set] = append(g.dues[set], d)
}

// forwardedSet recognises asynq's forward script (KEYS: a queue's
// scheduled or retry set and its pending list).
func forwardedSet(args []any) (set, pending string, ok bool) {
	keys, _, ok := asynqkey.Script(args, 2, 4)
	if !ok {
		return "", "", false
	}
	set, _ = keys[0].(string)
	pending, _ = keys[1].(string)
	q, ok := asynqkey.QueueOf(pending, "pending")
	if !ok {
		return "", "", false
	}
	if sq, ok := asynqkey.QueueOf(set, "scheduled"); ok && sq == q {
		return set, pending, true
	}
	if rq, ok := asynqkey.QueueOf(set, "retry"); ok && rq == q {
		return set, pending, true
	}
	return "", "", false
}

// forward runs asynq's forward script for set when the gate is open, and
// answers 0 (nothing moved) otherwise. Jobs moved wake the local loops at
// once and the other processes through the queue's channel.
func (e *emptyQueues) forward(ctx context.Context, next redis.ProcessHook, cmd redis.Cmder, set, pending string) error {
	c, ok := cmd.(*redis.Cmd)
	started := time.Now()
	e.mu.Lock()
	open := e.delayed.open(set, started)
	e.mu.Unlock()
	if !open && ok {
		c.SetVal(int64(0))
		return nil
	}
	err := next(ctx, cmd)
	e.mu.Lock()
	if err != nil {
		delete(e.delayed.last, set)
		e.mu.Unlock()
		return err
	}
	n, _ := c.Int64()
	if n == 0 {
		e.delayed.last[set] = started
		e.mu.Unlock()
		return nil
	}
	e.wake(pending)
	e.mu.Unlock()
	// Tell the other processes too: this one's loops may all be busy.
	q, _ := asynqkey.QueueOf(pending, "pending")
	ch := tasks.WakeChannel(q)
	if e.cluster {
		_ = e.rc.SPublish(ctx, ch, "p").Err()
	} else {
		_ = e.rc.Publish(ctx, ch, "p").Err()
	}
	return nil
}

// expectRetry tells the forwarder's gate that a retry of queue is due at d.
func (e *emptyQueues) expectRetry(queue string, d time.Time) {
	e.mu.Lock()
	e.delayed.expect(asynqkey.Retry(queue), d)
	e.mu.Unlock()
}

// announce handles one wake-up message for queue: "p" (a pending job) or
// "s<unix second>" (a scheduled job due then).
func (e *emptyQueues) announce(queue, msg string) {
	if s, ok := strings.CutPrefix(msg, "s"); ok {
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
			e.mu.Lock()
			e.delayed.expect(asynqkey.Scheduled(queue), time.Unix(sec, 0))
			e.mu.Unlock()
			return
		}
	}
	e.heard(queue)
}

// subscriber holds the process's subscription to its queues' wake-ups.
type subscriber struct {
	rc    redis.UniversalClient
	e     *emptyQueues
	drop  func(queue string) bool // tests: lose wake-ups on purpose
	heard func()                  // tests: count wake-ups received
}

// run subscribes and hands wake-ups to the hook until ctx is done.
func (s *subscriber) run(ctx context.Context, queues []string) {
	byChannel := map[string]string{}
	var channels []string
	for _, q := range queues {
		ch := tasks.WakeChannel(q)
		byChannel[ch] = q
		channels = append(channels, ch)
	}
	groups := [][]string{channels}
	if _, ok := s.rc.(*redis.ClusterClient); ok {
		groups = groups[:0]
		for _, ch := range channels { // one per slot: sharded channels cannot mix slots
			groups = append(groups, []string{ch})
		}
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.hold(ctx, g, byChannel)
		}()
	}
	wg.Wait()
}

// Backoff between attempts to subscribe again.
const (
	minResubscribe = 100 * time.Millisecond
	maxResubscribe = 30 * time.Second
)

// hold keeps one subscription to channels until ctx is done, replacing it
// whenever it fails. While it is down its queues are not heard, so the
// loops poll every PollInterval; once it is back every belief ends
// (setSubscribed), since what was announced meanwhile reached no one.
func (s *subscriber) hold(ctx context.Context, channels []string, byChannel map[string]string) {
	backoff := minResubscribe
	for ctx.Err() == nil {
		var ps *redis.PubSub
		if cc, ok := s.rc.(*redis.ClusterClient); ok {
			ps = cc.SSubscribe(ctx, channels...)
		} else {
			ps = s.rc.Subscribe(ctx, channels...)
		}
		stop := context.AfterFunc(ctx, func() { _ = ps.Close() }) // unblocks a read at shutdown
		if s.listen(ctx, ps, byChannel) {
			backoff = minResubscribe
		}
		stop()
		_ = ps.Close()
		for _, ch := range channels {
			s.e.setSubscribed(byChannel[ch], false)
		}
		retry.Wait(ctx, backoff)
		backoff = min(2*backoff, maxResubscribe)
	}
}

// listen reads one subscription on this goroutine (no hand-off between
// the socket and the hook) until ctx is done or the connection fails: an
// error, or no answer to a PING sent after healthCheck of silence. It
// reports whether the subscription was confirmed.
func (s *subscriber) listen(ctx context.Context, ps *redis.PubSub, byChannel map[string]string) (confirmed bool) {
	pinged := false
	for ctx.Err() == nil {
		m, err := ps.ReceiveTimeout(ctx, healthCheck)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				pinged = ps.Ping(ctx) == nil
				if pinged {
					continue
				}
			}
			return confirmed
		}
		pinged = false
		switch m := m.(type) {
		case *redis.Subscription:
			if q, known := byChannel[m.Channel]; known && (m.Kind == "subscribe" || m.Kind == "ssubscribe") {
				confirmed = true
				s.e.setSubscribed(q, true)
			}
		case *redis.Message:
			q, known := byChannel[m.Channel]
			if !known || (s.drop != nil && s.drop(q)) {
				continue
			}
			if s.heard != nil {
				s.heard()
			}
			s.e.announce(q, m.Payload)
		}
	}
	return confirmed
}
