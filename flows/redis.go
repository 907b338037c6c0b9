package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// waitMargin is how long before the call's deadline WAIT gives up, to
// leave time to read its answer.
const waitMargin = 300 * time.Millisecond

// evalWait runs script on key; with wait > 0 it sends WAIT wait in the
// same pipeline, on the connection of the node that holds key, and fails
// with tasks.ErrNotReplicated unless that many replicas acknowledged.
func evalWait(ctx context.Context, rc redis.UniversalClient, wait int, script *redis.Script, key string, args ...any) (any, error) {
	if wait <= 0 {
		return script.Run(ctx, rc, []string{key}, args...).Result()
	}
	var node redis.Cmdable = rc
	if cc, ok := rc.(*redis.ClusterClient); ok {
		n, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		node = n
	}
	timeout := time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl) - waitMargin
	}
	timeout = max(timeout, time.Millisecond) // WAIT 0 would wait forever
	for try := 0; ; try++ {
		pipe := node.Pipeline()
		res := pipe.EvalSha(ctx, script.Hash(), []string{key}, args...)
		acked := redis.NewIntCmd(ctx, "wait", wait, timeout.Milliseconds())
		_ = pipe.Process(ctx, acked)
		_, _ = pipe.Exec(ctx)
		v, err := res.Result()
		if err != nil && try == 0 && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			if lerr := script.Load(ctx, node).Err(); lerr != nil {
				return nil, lerr
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		n, werr := acked.Result()
		switch {
		case werr != nil:
			return v, fmt.Errorf("written to the master, but waiting for %d replica(s) failed (%v): %w", wait, werr, tasks.ErrNotReplicated)
		case int(n) < wait:
			return v, fmt.Errorf("written to the master, but %d of %d replica(s) acknowledged it in time: %w", n, wait, tasks.ErrNotReplicated)
		}
		return v, nil
	}
}

func decodeSpec(s string) (taskSpec, error) {
	var t taskSpec
	if err := json.Unmarshal([]byte(s), &t); err != nil {
		return t, fmt.Errorf("stored job: %w", err)
	}
	return t, nil
}

// traceHeaders are the trace headers (traceparent, tracestate) of the
// span in ctx as script arguments (traceArgs), or none.
func traceHeaders(ctx context.Context) []any {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	h := make(map[string]string, 2)
	propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(h))
	return traceArgs(h)
}

// enqueueAll enqueues the steps' jobs with c, at once when there are
// several; a job already there (tasks.ErrDuplicate) counts as enqueued.
// A trace in ctx (the step that made them ready) is carried on.
func (s *Store) enqueueAll(ctx context.Context, c *tasks.Client, flowID string, specs []taskSpec) error {
	if err := s.at("enqueue"); err != nil {
		return err
	}
	now := time.Now()
	ts := make([]*tasks.Task, len(specs))
	for i, sp := range specs {
		if trace.SpanContextFromContext(ctx).IsValid() {
			if _, given := sp.Headers[tasks.HeaderTraceParent]; !given {
				h := make(map[string]string, len(sp.Headers)+2)
				for k, v := range sp.Headers {
					h[k] = v
				}
				propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(h))
				sp.Headers = h
			}
		}
		ts[i] = sp.task(now)
	}
	return enqueue(ctx, c, ts)
}

// enqueue enqueues ts with c, concurrently when there are several; a job
// already there (tasks.ErrDuplicate) counts as enqueued.
func enqueue(ctx context.Context, c *tasks.Client, ts []*tasks.Task) error {
	one := func(t *tasks.Task) error {
		if _, err := c.Enqueue(ctx, t); err != nil && !errors.Is(err, tasks.ErrDuplicate) {
			return err
		}
		return nil
	}
	if len(ts) == 1 {
		return one(ts[0])
	}
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() { errs[i] = one(t) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// at runs the test hook of point.
func (s *Store) at(point string) error {
	if s == nil || s.hook == nil {
		return nil
	}
	return s.hook(point)
}
