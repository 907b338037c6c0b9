package tasks

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/hibiken/asynq"
)

// Retention keeps a completed job (and so its ID) for an hour: a duplicate
// enqueue within that window is refused.
const Retention = time.Hour

// Payload is implemented by the nine payloads of package payloads.
type Payload = payloads.Payload

// Task is a job ready to enqueue: the asynq task with its defaults applied,
// and the job ID it will have.
type Task struct {
	*asynq.Task
	// ID is "<type>:<dedupe key>".
	ID string
	// Queue is the queue it will be processed from.
	Queue string
	// opts are the asynq options it was built with.
	opts []asynq.Option

	// What Enqueue needs to rebuild the task with per-enqueue headers
	// (trace context, ready time) and to index it by escrow (history.go).
	headers       map[string]string
	readyAt       time.Time
	delay         time.Duration
	transactionID string
	// storedOpts are the options of a task rebuilt by Stored; Enqueue
	// rebuilds it with them to add a partner event's sequence.
	storedOpts []asynq.Option
}

// Options returns the asynq options the task was built with (job ID, queue,
// timeout, retry budget, retention, process time), for code that stores a
// task and rebuilds it later, such as package outbox.
func (t *Task) Options() []asynq.Option { return append([]asynq.Option(nil), t.opts...) }

// Option changes how one job is built.
type Option func(*options)

type options struct {
	dedupeKey string
	processAt time.Time
	processIn time.Duration
	headers   map[string]string
}

// DedupeKey replaces the type's default dedupe key (the seed's style:
// DedupeKey("escrow-esc-123-release")). The job ID is "<type>:<key>".
func DedupeKey(k string) Option { return func(o *options) { o.dedupeKey = k } }

// ProcessIn delays the first attempt by d.
func ProcessIn(d time.Duration) Option { return func(o *options) { o.processIn = d } }

// ProcessAt delays the first attempt until t.
func ProcessAt(t time.Time) Option { return func(o *options) { o.processAt = t } }

var dedupeKeyPattern = regexp.MustCompile(`^[A-Za-z0-9._:\-]{1,200}$`)

// JobID is the job ID of payload p under dedupe key key ("" for the
// default): "<type>:<key>".
func JobID(p Payload, key string) string {
	if key == "" {
		key = p.DedupeKey()
	}
	return p.TaskType() + ":" + key
}

// New validates p, encodes it and returns the task with the type's defaults:
// its queue and timeout (payloads.QueueOf, payloads.TimeoutOf), MaxRetry 3, one hour of retention and the job ID
// "<type>:<dedupe key>". A bad payload returns a *payloads.ValidationError
// naming every bad field.
func New[P Payload](p P, opts ...Option) (*Task, error) {
	var pl Payload = p // converted once: validation, encoding and the defaults read it
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := payloads.Validate(pl); err != nil {
		return nil, err
	}
	if o.dedupeKey != "" && !dedupeKeyPattern.MatchString(o.dedupeKey) {
		return nil, &payloads.ValidationError{TaskType: p.TaskType(), Fields: []payloads.FieldError{{
			Field: "dedupeKey", Message: "must be 1-200 characters of letters, digits, '-', '_', '.' or ':'"}}}
	}
	if o.processIn < 0 {
		return nil, &payloads.ValidationError{TaskType: p.TaskType(), Fields: []payloads.FieldError{{
			Field: "processIn", Message: "must not be negative"}}}
	}
	b, err := json.Marshal(pl)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", p.TaskType(), err)
	}
	id := JobID(pl, o.dedupeKey)
	queue := payloads.QueueOf(pl)
	aopts := []asynq.Option{
		asynq.TaskID(id),
		asynq.Queue(queue),
		asynq.Timeout(payloads.TimeoutOf(pl)),
		asynq.MaxRetry(retry.Max),
		asynq.Retention(Retention),
	}
	switch {
	case !o.processAt.IsZero():
		aopts = append(aopts, asynq.ProcessAt(o.processAt))
	case o.processIn > 0:
		aopts = append(aopts, asynq.ProcessIn(o.processIn))
	}
	at := asynq.NewTask(p.TaskType(), b, aopts...)
	if o.headers != nil {
		at = asynq.NewTaskWithHeaders(p.TaskType(), b, o.headers, aopts...)
	}
	return &Task{Task: at, ID: id, Queue: queue,
		opts: aopts, headers: o.headers, readyAt: o.processAt, delay: o.processIn, transactionID: transactionOf(pl)}, nil
}
