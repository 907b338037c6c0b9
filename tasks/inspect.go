package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ErrNotFound is returned when no job has the given ID.
var ErrNotFound = errors.New("job not found")

// Inspector reads job state over asynq's Inspector: a job's status, the
// queues' counts. Package repair repairs dead letters over it.
type Inspector struct {
	rc redis.UniversalClient
	i  *asynq.Inspector
	c  *asynq.Client
}

// NewInspector connects to Redis. Close it when done.
func NewInspector(r asynq.RedisConnOpt) *Inspector {
	rc := r.MakeRedisClient().(redis.UniversalClient)
	honourDeadlines(rc)
	rc.AddHook(newWakePublisher(rc)) // a requeued job wakes idle workers
	return &Inspector{rc: rc, i: asynq.NewInspectorFromRedisClient(rc), c: asynq.NewClientFromRedisClient(rc)}
}

// Ping checks that Redis answers, within ctx's deadline (a health check,
// or a CLI that wants to report an outage with its cause before it asks).
func (in *Inspector) Ping(ctx context.Context) error { return in.rc.Ping(ctx).Err() }

// Close closes the connection to Redis.
func (in *Inspector) Close() error { return in.rc.Close() }

// within runs f, asynq's context-free Inspector call, and returns its
// result, or ctx's error as soon as ctx ends: a Redis that does not answer
// costs the caller its deadline, never a hang. (The abandoned call ends at
// the Redis client's own read timeout.)
func within[T any](ctx context.Context, what string, f func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, fmt.Errorf("%s: no answer from Redis: %w", what, ctx.Err())
	}
}

// Asynq returns the underlying asynq Inspector.
func (in *Inspector) Asynq() *asynq.Inspector { return in.i }

// Job is the state of one job, in the JSON shape of the HTTP API.
type Job struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Queue string `json:"queue"`
	// State is asynq's: pending, active, scheduled, retry, archived, completed.
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	MaxRetry int    `json:"maxRetry"`
	// LastError has e-mail addresses masked.
	LastError     string     `json:"lastError,omitempty"`
	LastFailedAt  *time.Time `json:"lastFailedAt,omitempty"`
	NextProcessAt *time.Time `json:"nextProcessAt,omitempty"`
	CompletedAt   *time.Time `json:"completedAt,omitempty"`
	// Payload has e-mail addresses masked.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Result is what the handler wrote (e.g. the Stripe charge ID).
	Result json.RawMessage `json:"result,omitempty"`
}

func jobFrom(t *asynq.TaskInfo) Job {
	attempts := t.Retried
	switch t.State {
	case asynq.TaskStateActive, asynq.TaskStateArchived, asynq.TaskStateCompleted:
		attempts++
	}
	j := Job{
		ID: t.ID, Type: t.Type, Queue: t.Queue, State: t.State.String(),
		Attempts: attempts, MaxRetry: t.MaxRetry, LastError: payloads.MaskEmailsString(t.LastErr),
		LastFailedAt: timePtr(t.LastFailedAt), NextProcessAt: timePtr(t.NextProcessAt), CompletedAt: timePtr(t.CompletedAt),
		Payload: MaskPayload(t.Type, t.Payload),
	}
	if len(t.Result) > 0 {
		j.Result = payloads.MaskedJSON(t.Result)
	}
	return j
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// find looks for id in the queue its type names first (the usual case,
// one lookup), then in every other queue Redis knows.
func (in *Inspector) find(id string) (*asynq.TaskInfo, error) {
	var tried []string
	lookup := func(q string) (*asynq.TaskInfo, error) {
		tried = append(tried, q)
		t, err := in.i.GetTaskInfo(q, id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", id, err)
		}
		return t, nil
	}
	if typ, _, ok := strings.Cut(id, ":"); ok {
		if k, err := Lookup(typ); err == nil {
			if t, err := lookup(k.Queue); t != nil || err != nil {
				return t, err
			}
		}
	}
	all, err := in.i.Queues()
	if err != nil {
		return nil, fmt.Errorf("job %s: list queues: %w", id, err)
	}
	for _, q := range mergeQueues(all) {
		if slices.Contains(tried, q) {
			continue
		}
		if t, err := lookup(q); t != nil || err != nil {
			return t, err
		}
	}
	return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
}

// Find returns asynq's record of the job with the given ID, in whichever
// queue holds it (ErrNotFound when none does), or an error when ctx ends
// first. Package repair reads an archived job with it.
func (in *Inspector) Find(ctx context.Context, id string) (*asynq.TaskInfo, error) {
	return within(ctx, "find "+id, func() (*asynq.TaskInfo, error) { return in.find(id) })
}

// DeleteArchived deletes asynq's copy of the job id in queue if asynq holds
// it archived, and reports whether it did; a job in any other state, or
// none, is left alone. It returns an error when ctx ends first. Package
// repair discards a dead letter with it.
func (in *Inspector) DeleteArchived(ctx context.Context, queue, id string) (bool, error) {
	return within(ctx, "delete archived "+id, func() (bool, error) {
		if t, err := in.i.GetTaskInfo(queue, id); err == nil && t.State == asynq.TaskStateArchived {
			return true, in.i.DeleteTask(queue, id)
		}
		return false, nil
	})
}

// Status returns the state of the job with the given ID, or an error when
// ctx ends first.
func (in *Inspector) Status(ctx context.Context, id string) (Job, error) {
	return within(ctx, "status "+id, func() (Job, error) {
		t, err := in.find(id)
		if err != nil {
			return Job{}, err
		}
		return jobFrom(t), nil
	})
}

// QueueStats is one queue's counts, in the JSON shape of the HTTP API.
type QueueStats struct {
	Queue     string `json:"queue"`
	Size      int    `json:"size"`
	Pending   int    `json:"pending"`
	Active    int    `json:"active"`
	Scheduled int    `json:"scheduled"`
	Retry     int    `json:"retry"`
	Archived  int    `json:"archived"`
	Completed int    `json:"completed"`
	// ProcessedToday and FailedToday count today's outcomes (UTC).
	ProcessedToday int  `json:"processedToday"`
	FailedToday    int  `json:"failedToday"`
	ProcessedTotal int  `json:"processedTotal"`
	FailedTotal    int  `json:"failedTotal"`
	Paused         bool `json:"paused"`
	// LatencyMS is the age of the oldest pending job.
	LatencyMS   int64 `json:"latencyMs"`
	MemoryBytes int64 `json:"memoryBytes"`
}

// Stats returns the counts of the three standard queues and any other queue
// Redis knows (never nil), or an error when ctx ends first.
func (in *Inspector) Stats(ctx context.Context) ([]QueueStats, error) {
	return within(ctx, "stats", in.stats)
}

func (in *Inspector) stats() ([]QueueStats, error) {
	known, err := in.i.Queues()
	if err != nil {
		return nil, fmt.Errorf("stats: list queues: %w", err)
	}
	out := []QueueStats{}
	for _, q := range mergeQueues(known) {
		qi, err := in.i.GetQueueInfo(q)
		if errors.Is(err, asynq.ErrQueueNotFound) || (err != nil && strings.Contains(err.Error(), "does not exist")) {
			out = append(out, QueueStats{Queue: q})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stats: queue %s: %w", q, err)
		}
		out = append(out, QueueStats{
			Queue: q, Size: qi.Size, Pending: qi.Pending, Active: qi.Active, Scheduled: qi.Scheduled,
			Retry: qi.Retry, Archived: qi.Archived, Completed: qi.Completed,
			ProcessedToday: qi.Processed, FailedToday: qi.Failed, ProcessedTotal: qi.ProcessedTotal, FailedTotal: qi.FailedTotal,
			Paused: qi.Paused, LatencyMS: qi.Latency.Milliseconds(), MemoryBytes: qi.MemoryUsage,
		})
	}
	return out, nil
}

func mergeQueues(known []string) []string {
	qs := []string{payloads.QueueCritical, payloads.QueueDefault, payloads.QueueLow}
	for _, q := range known {
		if !slices.Contains(qs, q) {
			qs = append(qs, q)
		}
	}
	return qs
}
