package tasks

import (
	"time"

	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// NewSystemTask builds a job of an internal system type: one that is not a
// registered job type (it is not in Types, FromJSON refuses it, and
// handlers.NewServeMux has no handler for it) but is run by a middleware
// of the worker that recognises its type, such as package flows' start
// job. It has the job ID id, the queue, timeout, MaxRetry 3 and Retention
// of a typed job, and headers (nil for none), so that it can be stored and
// rebuilt as any job (package outbox) and a duplicate is refused as one.
// The caller validates payload; nothing here does.
func NewSystemTask(taskType, id, queue string, payload []byte, timeout time.Duration, headers map[string]string) *Task {
	opts := []asynq.Option{
		asynq.TaskID(id),
		asynq.Queue(queue),
		asynq.Timeout(timeout),
		asynq.MaxRetry(retry.Max),
		asynq.Retention(Retention),
	}
	return &Task{Task: asynq.NewTaskWithHeaders(taskType, payload, headers, opts...), ID: id, Queue: queue,
		opts: opts, headers: headers}
}

// Redis is the client's connection to Redis, for packages that keep state
// next to the jobs they enqueue with this client (package flows). Closing
// the client closes it.
func (c *Client) Redis() redis.UniversalClient { return c.rc }

// ReplicasToWait is the number of replicas every write of this client
// waits for (WaitReplicas; 0: none). Packages that write their own state
// next to the jobs wait for as many.
func (c *Client) ReplicasToWait() int { return c.waitReplicas }
