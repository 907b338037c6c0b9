package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

// start is one job reaching a handler.
type start struct {
	id string
	at time.Time
}

// probe wraps the handler under test: it counts finished jobs, notes the
// first start and the last finish, and in the idle phase reports each start.
type probe struct {
	target  int64
	n       atomic.Int64
	failed  atomic.Int64
	first   atomic.Int64 // UnixNano of the first handler start
	last    atomic.Int64 // UnixNano of the target-th handler return
	done    chan struct{}
	started chan start // nil outside the idle phase
}

func newProbe(target int, idle bool) *probe {
	p := &probe{target: int64(target), done: make(chan struct{})}
	if idle {
		p.started = make(chan start, 16)
	}
	return p
}

func (p *probe) wrap(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		now := time.Now()
		p.first.CompareAndSwap(0, now.UnixNano())
		if p.started != nil {
			id, _ := asynq.GetTaskID(ctx)
			select {
			case p.started <- start{id: id, at: now}:
			default:
			}
		}
		err := h.ProcessTask(ctx, t)
		if err != nil {
			p.failed.Add(1)
		}
		if p.n.Add(1) == p.target {
			p.last.Store(time.Now().UnixNano())
			close(p.done)
		}
		return err
	})
}

// elapsed is first handler start to the target-th handler return.
func (p *probe) elapsed() time.Duration {
	return time.Duration(p.last.Load() - p.first.Load())
}

// rawHandler is the raw asynq baseline's handler: nothing at all.
var rawHandler = asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })
