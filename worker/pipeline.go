package worker

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// combiner is a go-redis hook that sends asynq's per-job commands, issued
// by many goroutines at once (each fetch loop's dequeue script, each
// finished job's completion script, result writes), to Redis in shared
// pipelines instead of one round trip each.
//
// It keeps at most maxFlights round trips of these commands in flight.
// A command that finds a free flight and nobody waiting is sent at once,
// alone, exactly as without the hook; otherwise it waits in line, and when
// a flight ends the first in line sends everything queued behind it as one
// pipeline and hands each command its own reply. Nothing is delayed by a
// timer: under light load every command goes alone, under heavy load one
// write and one read carry many, on both sides of the connection (Redis
// spends most of a small command's CPU on its socket).
//
// Only commands that are safe on any pooled connection qualify: scripts
// and HSETs on asynq's keys (asynq:{queue}:…), none of which blocks or
// changes connection state. Everything else (connection set-up, WATCH,
// blocking reads, this package's own commands) passes through. A pipeline
// gives every command its own reply and error, so callers see what they
// would have seen alone; a connection failure fails the commands of that
// pipeline, as it fails a command sent alone.
type combiner struct {
	rc         redis.UniversalClient
	maxFlights int

	mu      sync.Mutex
	flights int              // round trips of combinable commands in flight
	queue   []*combinedCmd   // waiting, oldest first
	spare   [][]*combinedCmd // emptied lines for reuse
	free    sync.Pool        // *combinedCmd
}

// combinedCmd is a command waiting in line. lead receives the line to send
// (its own command first) when its sender is to send it, nil once its reply
// is in.
type combinedCmd struct {
	cmd  redis.Cmder
	lead chan []*combinedCmd
}

func newCombiner(rc redis.UniversalClient, maxFlights int) *combiner {
	return &combiner{rc: rc, maxFlights: maxFlights}
}

func (c *combiner) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *combiner) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (c *combiner) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !combinable(cmd.Args()) {
			return next(ctx, cmd)
		}
		c.mu.Lock()
		if c.flights < c.maxFlights && len(c.queue) == 0 {
			c.flights++
			c.mu.Unlock()
			err := next(ctx, cmd)
			c.land()
			return err
		}
		w, _ := c.free.Get().(*combinedCmd)
		if w == nil {
			w = &combinedCmd{lead: make(chan []*combinedCmd, 1)}
		}
		w.cmd = cmd
		c.queue = append(c.queue, w)
		c.mu.Unlock()
		err := error(nil)
		if line := <-w.lead; line != nil {
			err = c.send(ctx, next, line)
		} else {
			err = cmd.Err()
		}
		w.cmd = nil
		c.free.Put(w)
		return err
	}
}

// send sends line, alone through next or as one pipeline (its caller
// holds a flight and is line[0]), releases the other senders and lands.
func (c *combiner) send(ctx context.Context, next redis.ProcessHook, line []*combinedCmd) error {
	var err error
	if len(line) == 1 {
		err = next(ctx, line[0].cmd)
	} else {
		pipe := c.rc.Pipeline()
		for _, w := range line {
			_ = pipe.Process(ctx, w.cmd)
		}
		_, _ = pipe.Exec(context.WithoutCancel(ctx))
		err = line[0].cmd.Err()
	}
	for _, w := range line[1:] {
		w.lead <- nil
	}
	clear(line)
	c.mu.Lock()
	if len(c.spare) < 4 {
		c.spare = append(c.spare, line[:0])
	}
	c.mu.Unlock()
	c.land()
	return err
}

// land ends a flight: the first in line, if any, takes it over with
// everything in line.
func (c *combiner) land() {
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.flights--
		c.mu.Unlock()
		return
	}
	line := c.queue
	if n := len(c.spare); n > 0 {
		c.queue, c.spare = c.spare[n-1], c.spare[:n-1]
	} else {
		c.queue = nil
	}
	c.mu.Unlock()
	line[0].lead <- line
}

// combinable reports whether args are a command the combiner may batch:
// EVALSHA or EVAL with a first key of asynq's, or HSET of an asynq key.
func combinable(args []any) bool {
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

// combineFlights is the combiner's limit of round trips in flight.
const combineFlights = 2
