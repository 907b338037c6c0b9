package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// EnqueueTimeout is the longest Enqueue waits when the caller's context has
// no earlier deadline: a Redis outage returns an error, never a stall.
const EnqueueTimeout = 2 * time.Second

// ErrDuplicate is returned by Enqueue when a job with the same ID is pending,
// scheduled, retrying, archived or completed within the last hour. The ID
// returned alongside it is the existing job's.
var ErrDuplicate = errors.New("duplicate job")

// Client enqueues jobs. It is safe for concurrent use.
type Client struct {
	rc      redis.UniversalClient
	c       *asynq.Client
	timeout time.Duration
}

// NewClient connects to Redis (asynq.RedisClientOpt, RedisFailoverClientOpt
// or RedisClusterClientOpt; see RedisFromEnv). Close it when done.
func NewClient(r asynq.RedisConnOpt) *Client {
	rc := r.MakeRedisClient().(redis.UniversalClient)
	honourDeadlines(rc)
	rc.AddHook(newWakePublisher(rc)) // wake idle workers in the enqueue's round trip
	return &Client{rc: rc, c: asynq.NewClientFromRedisClient(rc), timeout: EnqueueTimeout}
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
// existing job's ID and an error that errors.Is ErrDuplicate.
func (c *Client) Enqueue(ctx context.Context, t *Task) (string, error) {
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if _, err := c.c.EnqueueContext(ctx, t.Task); err != nil {
		if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
			return t.ID, fmt.Errorf("enqueue %s: %w", t.ID, ErrDuplicate)
		}
		return "", fmt.Errorf("enqueue %s: %w", t.ID, err)
	}
	return t.ID, nil
}

// Close closes the connection to Redis.
func (c *Client) Close() error { return c.rc.Close() }
