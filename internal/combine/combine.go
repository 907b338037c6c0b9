// Package combine is a go-redis hook that sends the commands many
// goroutines issue at once to Redis in shared pipelines instead of one
// round trip each. The worker puts one on its client for asynq's per-job
// commands (each fetch loop's dequeue script, each finished job's
// completion script, result writes); tasks.Client puts one on its own for
// every script (enqueues from many callers, flows' advancements).
//
// A Hook keeps at most a given number of round trips of the commands it
// combines in flight. A command that finds a free flight and nobody
// waiting is sent at once, alone, exactly as without the hook; otherwise
// it waits in line, and when a flight ends the first in line sends
// everything queued behind it as one pipeline and hands each command its
// own reply. Nothing is delayed by a timer: under light load every command
// goes alone, under heavy load one write and one read carry many, on both
// sides of the connection (Redis spends most of a small command's CPU on
// its socket).
//
// Only commands that are safe on any pooled connection may be combined
// (the predicate given to New says which): a command that blocks, changes
// the connection's state (WATCH, SELECT, a subscription) or must share a
// connection with the next one (a write that WAIT is about) must pass
// through. A pipeline gives every command its own reply and error, so
// callers see what they would have seen alone; a connection failure fails
// the commands of that pipeline, as it fails a command sent alone. A
// shared pipeline gives up at the earliest deadline of its commands'
// contexts, so none of them waits past its own; cancellation without a
// deadline does not end it early (the others still want their answers).
package combine

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hook is the combining hook. Add it to a client with AddHook after the
// hooks that rewrite commands (it sees what they send) and before any
// that must see each command alone.
type Hook struct {
	rc         redis.UniversalClient
	maxFlights int
	combinable func(args []any) bool

	mu      sync.Mutex
	flights int          // round trips of combinable commands in flight
	queue   []*waiting   // waiting, oldest first
	spare   [][]*waiting // emptied lines for reuse
	free    sync.Pool    // *waiting
}

// waiting is a command in line. lead receives the line to send (its own
// command first) when its sender is to send it, nil once its reply is in.
type waiting struct {
	ctx  context.Context
	cmd  redis.Cmder
	lead chan []*waiting
}

// New returns a Hook for rc (the client it is added to, which sends the
// shared pipelines) that combines the commands whose arguments combinable
// accepts, with at most maxFlights round trips of them in flight (at
// least one).
func New(rc redis.UniversalClient, maxFlights int, combinable func(args []any) bool) *Hook {
	return &Hook{rc: rc, maxFlights: max(maxFlights, 1), combinable: combinable}
}

// Waiting is how many commands wait in line now (for tests and gauges).
func (h *Hook) Waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.queue)
}

func (h *Hook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.combinable(cmd.Args()) {
			return next(ctx, cmd)
		}
		h.mu.Lock()
		if h.flights < h.maxFlights && len(h.queue) == 0 {
			h.flights++
			h.mu.Unlock()
			err := next(ctx, cmd)
			h.land()
			return err
		}
		w, _ := h.free.Get().(*waiting)
		if w == nil {
			w = &waiting{lead: make(chan []*waiting, 1)}
		}
		w.ctx, w.cmd = ctx, cmd
		h.queue = append(h.queue, w)
		h.mu.Unlock()
		err := error(nil)
		if line := <-w.lead; line != nil {
			err = h.send(ctx, next, line)
		} else {
			err = cmd.Err()
		}
		w.ctx, w.cmd = nil, nil
		h.free.Put(w)
		return err
	}
}

// send sends line, alone through next or as one pipeline (its caller
// holds a flight and is line[0]), releases the other senders and lands.
func (h *Hook) send(ctx context.Context, next redis.ProcessHook, line []*waiting) error {
	var err error
	if len(line) == 1 {
		err = next(ctx, line[0].cmd)
	} else {
		pctx, cancel := lineContext(ctx, line)
		pipe := h.rc.Pipeline()
		for _, w := range line {
			_ = pipe.Process(w.ctx, w.cmd)
		}
		_, _ = pipe.Exec(pctx)
		cancel()
		err = line[0].cmd.Err()
	}
	for _, w := range line[1:] {
		w.lead <- nil
	}
	clear(line)
	h.mu.Lock()
	if len(h.spare) < 4 {
		h.spare = append(h.spare, line[:0])
	}
	h.mu.Unlock()
	h.land()
	return err
}

// lineContext is the context of a shared pipeline: lead's values, no
// cancellation, and the earliest deadline of the line's contexts.
func lineContext(lead context.Context, line []*waiting) (context.Context, context.CancelFunc) {
	var first time.Time
	for _, w := range line {
		if dl, ok := w.ctx.Deadline(); ok && (first.IsZero() || dl.Before(first)) {
			first = dl
		}
	}
	ctx := context.WithoutCancel(lead)
	if first.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, first)
}

// land ends a flight: the first in line, if any, takes it over with
// everything in line.
func (h *Hook) land() {
	h.mu.Lock()
	if len(h.queue) == 0 {
		h.flights--
		h.mu.Unlock()
		return
	}
	line := h.queue
	if n := len(h.spare); n > 0 {
		h.queue, h.spare = h.spare[n-1], h.spare[:n-1]
	} else {
		h.queue = nil
	}
	h.mu.Unlock()
	line[0].lead <- line
}

// AsynqCommand accepts asynq's per-job commands: EVALSHA or EVAL with a
// first key of asynq's ("asynq:{queue}:…"), or HSET of an asynq key (a
// job's result).
func AsynqCommand(args []any) bool {
	if len(args) < 2 {
		return false
	}
	name, _ := args[0].(string)
	switch name {
	case "evalsha", "eval":
		if len(args) < 4 {
			return false
		}
		if n, _ := args[2].(int); n < 1 {
			return false
		}
		k, _ := args[3].(string)
		return strings.HasPrefix(k, "asynq:{")
	case "hset":
		k, _ := args[1].(string)
		return strings.HasPrefix(k, "asynq:{")
	}
	return false
}

// Script accepts every script call (EVALSHA, EVAL) with at least one key:
// a script neither blocks nor changes its connection's state.
func Script(args []any) bool {
	if len(args) < 4 {
		return false
	}
	switch name, _ := args[0].(string); name {
	case "evalsha", "eval":
		n, _ := args[2].(int)
		return n >= 1
	}
	return false
}
