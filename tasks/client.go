package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/combine"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// EnqueueTimeout is the longest Enqueue waits when the caller's context has
// no earlier deadline: a Redis outage returns an error, never a stall.
const EnqueueTimeout = 2 * time.Second

// combineFlights is the limit of script round trips of one Client in
// flight; more scripts wait and share the next (internal/combine).
const combineFlights = 2

// ErrDuplicate is returned by Enqueue when a job with the same ID is pending,
// scheduled, retrying, archived or completed within the last hour. The ID
// returned alongside it is the existing job's.
var ErrDuplicate = errors.New("duplicate job")

// Client enqueues jobs. It is safe for concurrent use.
type Client struct {
	rc           redis.UniversalClient
	c            *asynq.Client
	in           *asynq.Inspector // on rc; reads the job of a refused duplicate
	timeout      time.Duration
	waitReplicas int
	tracing      *Tracing // nil: no spans
	sharded      bool     // a Redis Cluster: an escrow's keys are in other slots than its queue's
	combiner     *combine.Hook
}

// NewClient connects to Redis (asynq.RedisClientOpt, RedisFailoverClientOpt
// or RedisClusterClientOpt; see RedisFromEnv). Close it when done.
func NewClient(r asynq.RedisConnOpt, opts ...ClientOption) *Client {
	rc := r.MakeRedisClient().(redis.UniversalClient)
	honourDeadlines(rc)
	rc.AddHook(newWakePublisher(rc)) // wake idle workers in the enqueue's round trip
	_, cluster := rc.(*redis.ClusterClient)
	c := &Client{rc: rc, timeout: EnqueueTimeout, sharded: cluster}
	for _, o := range opts {
		o(c)
	}
	if c.waitReplicas > 0 {
		// After the wake publisher, so inside it: WAIT joins the pipeline
		// that carries the enqueue script and the wake-up.
		installWaitHook(rc, c.waitReplicas)
	}
	// Innermost: scripts issued while a round trip is in flight (enqueues
	// from many callers, flows' advancements, the history and sequence
	// scripts) share the next one. A script WAIT is about reaches it
	// already in its pipeline, which passes through.
	c.combiner = combine.New(rc, combineFlights, combine.Script)
	rc.AddHook(c.combiner)
	c.c = asynq.NewClientFromRedisClient(rc)
	c.in = asynq.NewInspectorFromRedisClient(rc)
	return c
}

// honourDeadlines makes every command give up at the caller's context
// deadline. go-redis otherwise waits its ReadTimeout on a Redis that
// accepted the connection but does not answer, and Enqueue would overrun
// its two seconds.
func honourDeadlines(rc redis.UniversalClient) {
	switch c := rc.(type) {
	case *redis.Client: // also the Sentinel failover client
		c.Options().ContextTimeoutEnabled = true
	case *redis.ClusterClient:
		c.Options().ContextTimeoutEnabled = true
	}
}

// Enqueue stores t and returns its job ID. On a duplicate it returns the
// existing job's ID and an error that errors.Is ErrDuplicate. With
// WaitReplicas(n) it returns nil (or ErrDuplicate) only once n replicas
// hold the job, else the job's ID and an error that errors.Is
// ErrNotReplicated.
//
// The job carries HeaderReadyAt and, with WithTracerProvider, the trace
// context of its producer span. A job of an escrow (a payload with a
// transactionId) is added to that escrow's history index (History) in the
// same round trip, ahead of the job; when that write fails and the job
// was stored, Enqueue returns the job's ID and an error (a retry adds the
// index entry and reports ErrDuplicate). A partner event
// (webhook_escrow_status_changed) without a sequence gets the next one of
// its escrow, in the same round trip on one Redis, in one more first on a
// Cluster (sequence.go).
func (c *Client) Enqueue(ctx context.Context, t *Task) (id string, err error) {
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if c.tracing != nil && t.opts != nil { // a task rebuilt from storage keeps the trace it was stamped with
		var span trace.Span
		ctx, span = c.tracing.Start(ctx, t)
		defer func() {
			if errors.Is(err, ErrDuplicate) {
				endSpan(span, nil)
				return
			}
			endSpan(span, err)
		}()
	}
	t, seq, err := c.sequenced(ctx, t)
	if err != nil {
		return "", err
	}
	if seq != nil {
		ctx = context.WithValue(ctx, seqEntryKey{}, seq)
	}
	now := time.Now()
	ix := c.indexEntry(t, now)
	if ix != nil {
		ctx = context.WithValue(ctx, indexEntryKey{}, ix)
	}
	var rw *replicaWait
	if c.waitReplicas > 0 {
		rw = &replicaWait{acked: -1}
		ctx = context.WithValue(ctx, replicaWaitKey{}, rw)
	}
	_, err = c.c.EnqueueContext(ctx, c.asynqTask(ctx, t, now))
	dup := errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask)
	if ix != nil && (err == nil || dup) {
		// The job's own replication was waited for in its pipeline; the
		// index is a secondary record, written again here only when that
		// pipeline did not carry it, and is not waited for a second time.
		ictx := context.WithValue(ctx, replicaWaitKey{}, nil)
		if werr := ix.write(ictx, c.rc, c.in, t.Queue, err == nil); werr != nil {
			return t.ID, fmt.Errorf("enqueue %s: stored, but not in the escrow's history: %w", t.ID, werr)
		}
	}
	switch {
	case dup:
		if rw != nil {
			// With WaitReplicas a duplicate is reported only once the
			// existing job is known to be on the replicas too.
			if err := notReplicated(t.ID, c.waitReplicas, rw); err != nil {
				return t.ID, err
			}
		}
		return t.ID, fmt.Errorf("enqueue %s: %w", t.ID, ErrDuplicate)
	case errors.Is(err, context.DeadlineExceeded):
		return "", fmt.Errorf("enqueue %s: no answer from Redis: %w", t.ID, err)
	case err != nil:
		return "", fmt.Errorf("enqueue %s: %w", t.ID, err)
	}
	if rw != nil {
		if err := notReplicated(t.ID, c.waitReplicas, rw); err != nil {
			return t.ID, err
		}
	}
	return t.ID, nil
}

// Close closes the connection to Redis.
func (c *Client) Close() error { return c.rc.Close() }
