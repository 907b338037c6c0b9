package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ErrNotStorable is returned by Add for a task carrying an asynq option the
// outbox cannot rebuild (asynq.Unique, asynq.Group, asynq.Deadline). The
// typed constructors never set them.
var ErrNotStorable = errors.New("task option cannot be stored in the outbox")

const insertRow = `
INSERT INTO escrowjobs_outbox (job_id, task_type, payload, queue, timeout_ms, max_retry, retention_ms, process_at, headers)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (job_id) DO NOTHING`

// row is one stored task.
type row struct {
	jobID     string
	taskType  string
	payload   []byte
	queue     string
	timeout   time.Duration
	maxRetry  int
	retention time.Duration
	processAt *time.Time
	headers   map[string]string
	escrow    string // a partner event's escrow, set when claimed
}

// Add writes tasks into the outbox inside tx. They become jobs when tx
// commits (a relay enqueues them under their job IDs) and vanish with it
// when tx rolls back. Pass tasks built by the typed constructors of package
// tasks: they are validated there, so a bad payload fails before Add.
//
// A task without a trace context (see tasks.Tracing.Stamp) gets the one of
// ctx's span, if any, so the worker's span joins the caller's trace; and
// its due time (tasks.HeaderReadyAt) is set here, so the worker's
// start-latency histogram measures from Add, the relay's share included.
//
// A job ID that already waits in the outbox is not added again; one that was
// already relayed is refused by Redis within its retention, as a second
// tasks.Client.Enqueue would be. A relative process time (tasks.ProcessIn)
// becomes absolute here, counted from the call.
func Add(ctx context.Context, tx pgx.Tx, ts ...*tasks.Task) error {
	args, err := insertArgs(ctx, ts)
	if err != nil || len(args) == 0 {
		return err
	}
	b := &pgx.Batch{}
	for _, a := range args {
		b.Queue(insertRow, a...)
	}
	b.Queue(notifyRelay, channel)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("outbox: add %d job(s): %w", len(ts), err)
	}
	return nil
}

// AddSQL is Add for a service on database/sql: tx is a transaction of a
// *sql.DB opened with pgx's driver (github.com/jackc/pgx/v5/stdlib: the
// driver name "pgx", or stdlib.OpenDBFromPool). The rows, the job IDs and
// the rules are Add's: a rollback leaves no job.
func AddSQL(ctx context.Context, tx *sql.Tx, ts ...*tasks.Task) error {
	args, err := insertArgs(ctx, ts)
	if err != nil || len(args) == 0 {
		return err
	}
	for _, a := range args {
		if _, err := tx.ExecContext(ctx, insertRow, a...); err != nil {
			return fmt.Errorf("outbox: add %d job(s): %w", len(ts), err)
		}
	}
	if _, err := tx.ExecContext(ctx, notifyRelay, channel); err != nil {
		return fmt.Errorf("outbox: add %d job(s): %w", len(ts), err)
	}
	return nil
}

// notifyRelay wakes the relays listening on the outbox channel once the
// transaction commits.
const notifyRelay = `SELECT pg_notify($1, '')`

// insertArgs are the arguments of insertRow for each task, in order, with
// its trace context and due time set (see Add).
func insertArgs(ctx context.Context, ts []*tasks.Task) ([][]any, error) {
	now := time.Now()
	args := make([][]any, 0, len(ts))
	for _, t := range ts {
		if t == nil || t.Task == nil {
			return nil, errors.New("outbox: add: nil task")
		}
		r, err := toRow(t, now)
		if err != nil {
			return nil, err
		}
		headers := make(map[string]string, len(r.headers)+1)
		for k, v := range r.headers {
			headers[k] = v
		}
		if _, given := headers[tasks.HeaderTraceParent]; !given && trace.SpanContextFromContext(ctx).IsValid() {
			// The caller's span (the request that commits tx): the job's
			// consumer span joins that trace even without tasks.Tracing.Stamp.
			propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(headers))
		}
		if _, given := headers[tasks.HeaderReadyAt]; !given {
			// Due from now (or its process time): the worker's start
			// latency of an outbox job then counts the relay's share too.
			ready := now
			if r.processAt != nil {
				ready = *r.processAt
			}
			tasks.SetReadyAt(headers, ready)
		}
		hb, err := json.Marshal(headers)
		if err != nil {
			return nil, fmt.Errorf("outbox: add %s: headers: %w", r.jobID, err)
		}
		args = append(args, []any{r.jobID, r.taskType, r.payload, r.queue, r.timeout.Milliseconds(), r.maxRetry,
			r.retention.Milliseconds(), r.processAt, hb})
	}
	return args, nil
}

// toRow reads what rebuilds t from its options.
func toRow(t *tasks.Task, now time.Time) (row, error) {
	r := row{jobID: t.ID, taskType: t.Type(), payload: t.Payload(), queue: t.Queue, headers: t.Headers(), maxRetry: retry.Max}
	if r.queue == "" {
		r.queue = "default"
	}
	for _, o := range t.Options() {
		switch o.Type() {
		case asynq.TaskIDOpt:
			r.jobID = o.Value().(string)
		case asynq.QueueOpt:
			r.queue = o.Value().(string)
		case asynq.TimeoutOpt:
			r.timeout = o.Value().(time.Duration)
		case asynq.MaxRetryOpt:
			r.maxRetry = o.Value().(int)
		case asynq.RetentionOpt:
			r.retention = o.Value().(time.Duration)
		case asynq.ProcessAtOpt:
			at := o.Value().(time.Time)
			r.processAt = &at
		case asynq.ProcessInOpt:
			at := now.Add(o.Value().(time.Duration))
			r.processAt = &at
		default:
			return row{}, fmt.Errorf("outbox: add %s: %s: %w", t.ID, o.String(), ErrNotStorable)
		}
	}
	if r.jobID == "" {
		return row{}, fmt.Errorf("outbox: add %s task: no job ID (build it with the typed constructors of package tasks)", t.Type())
	}
	return r, nil
}

// task rebuilds the task r was made from.
func (r row) task() *tasks.Task {
	opts := []asynq.Option{asynq.TaskID(r.jobID), asynq.Queue(r.queue), asynq.MaxRetry(r.maxRetry)}
	if r.timeout > 0 {
		opts = append(opts, asynq.Timeout(r.timeout))
	}
	if r.retention > 0 {
		opts = append(opts, asynq.Retention(r.retention))
	}
	if r.processAt != nil {
		opts = append(opts, asynq.ProcessAt(*r.processAt))
	}
	var t *asynq.Task
	if len(r.headers) > 0 {
		t = asynq.NewTaskWithHeaders(r.taskType, r.payload, r.headers, opts...)
	} else {
		t = asynq.NewTask(r.taskType, r.payload, opts...)
	}
	return tasks.Stored(t, r.jobID, r.queue, opts...)
}
