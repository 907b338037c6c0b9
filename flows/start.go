package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// StartType is the task type of the system job that starts a flow added
// through the outbox (Add). It is not a registered job type: only the
// Store's Middleware runs it.
const StartType = "escrowjobs_flow_start"

// startTimeout is the start job's timeout.
const startTimeout = 30 * time.Second

// wireFlow is a flow definition with its steps' jobs: the start job's
// payload, and what Start stores.
type wireFlow struct {
	Name      string     `json:"name"`
	Key       string     `json:"key"`
	CreatedAt time.Time  `json:"createdAt"`
	Steps     []wireStep `json:"steps"`
}

type wireStep struct {
	step
	Task taskSpec `json:"task"`
}

// def is the graph stored in the flow's hash.
type def struct {
	Name      string `json:"name"`
	Key       string `json:"key"`
	CreatedAt int64  `json:"createdAt"`
	Steps     []step `json:"steps"`
}

func (f *Flow) wire(created time.Time) wireFlow {
	w := wireFlow{Name: f.name, Key: f.key, CreatedAt: created.UTC(), Steps: make([]wireStep, len(f.steps))}
	for i, s := range f.steps {
		w.Steps[i] = wireStep{step: s, Task: s.spec}
	}
	return w
}

// Start stores the flow and enqueues its steps that wait for no other
// (on-failure steps wait for a failure) with c, and returns the flow's
// ID. A flow ID that exists, or that ended within the retention, is a
// duplicate: Start returns the existing ID and an error that errors.Is
// ErrDuplicate, after enqueueing again the existing flow's steps that are
// due but may not have been enqueued (a Start that failed half-way is
// completed by its retry, which reports ErrDuplicate).
//
// The flow's state is written with one Redis script (and WAIT, when c or
// WaitReplicas asks for replicas); the jobs are enqueued after it.
func Start(ctx context.Context, c *tasks.Client, f *Flow, opts ...Option) (id string, err error) {
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > tasks.EnqueueTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, tasks.EnqueueTimeout)
		defer cancel()
	}
	s := &Store{rc: c.Redis(), cfg: newConfig(opts)}
	roots := make(map[string]*tasks.Task)
	for _, st := range f.steps {
		roots[st.Name] = st.task
	}
	return s.start(ctx, c, f.wire(time.Now()), roots)
}

// start creates the flow w unless it exists and enqueues its due steps
// (built, when given, else rebuilt from w).
func (s *Store) start(ctx context.Context, c *tasks.Client, w wireFlow, built map[string]*tasks.Task) (string, error) {
	id := ID(w.Name, w.Key)
	created := w.CreatedAt
	d := def{Name: w.Name, Key: w.Key, CreatedAt: created.UnixMilli(), Steps: make([]step, len(w.Steps))}
	for i, st := range w.Steps {
		d.Steps[i] = st.step
	}
	db, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("flow %s: start: %w", id, err)
	}
	now := time.Now().UnixMilli()
	args := []any{s.cfg.retention.Milliseconds(),
		"def", db, "name", w.Name, "key", w.Key, "state", StateRunning, "createdAt", d.CreatedAt, "updatedAt", now}
	var due []wireStep
	inline := !isCluster(s.rc)
	for _, st := range w.Steps {
		state := StepWaiting
		if len(st.After) == 0 && !st.OnFailure {
			state = StepPending
			due = append(due, st)
		}
		tb, err := json.Marshal(st.Task)
		if err != nil {
			return "", fmt.Errorf("flow %s: start: step %s: %w", id, st.Name, err)
		}
		args = append(args, "s:"+st.Name, state, "t:"+st.Name, tb)
		if inline && len(st.After) > 0 && !st.OnFailure {
			if m, ok := inlineJob(st.Task); ok {
				args = append(args, "q:"+st.Name, m)
			}
		}
	}
	res, err := evalWait(ctx, s.rc, max(s.cfg.wait, c.ReplicasToWait()), startScript, flowKey(id), args...)
	if err != nil {
		return "", fmt.Errorf("flow %s: start: %w", id, err)
	}
	vals, _ := res.([]any)
	if len(vals) == 0 {
		return "", fmt.Errorf("flow %s: start: unexpected answer %v", id, res)
	}
	if n, _ := vals[0].(int64); n == 0 {
		var pending []taskSpec
		for _, v := range vals[1:] {
			str, _ := v.(string)
			spec, err := decodeSpec(str)
			if err != nil {
				return id, fmt.Errorf("flow %s: %w", id, err)
			}
			pending = append(pending, spec)
		}
		if len(pending) > 0 {
			if err := s.enqueueAll(ctx, c, id, pending); err != nil {
				return id, fmt.Errorf("flow %s: exists; enqueueing its pending steps: %w", id, err)
			}
		}
		return id, fmt.Errorf("start flow %s: %w", id, ErrDuplicate)
	}
	s.indexStarted(ctx, id, w.Name, created)
	if err := s.at("started"); err != nil {
		return id, err
	}
	ts := make([]*tasks.Task, 0, len(due))
	specs := make([]taskSpec, 0, len(due))
	for _, st := range due {
		if t := built[st.Name]; t != nil {
			ts = append(ts, t)
		} else {
			specs = append(specs, st.Task)
		}
	}
	err = enqueue(ctx, c, ts)
	if len(specs) > 0 {
		err = errors.Join(err, s.enqueueAll(ctx, c, id, specs))
	}
	if err != nil {
		return id, fmt.Errorf("flow %s: stored, but enqueueing its first steps failed (Start again to finish): %w", id, err)
	}
	return id, nil
}

// indexStarted adds a new flow to the indexes and counts it.
func (s *Store) indexStarted(ctx context.Context, id, name string, created time.Time) {
	pipe := s.rc.Pipeline()
	for _, ix := range []string{indexAll, indexRunning} {
		pipe.ZAdd(ctx, ix, redis.Z{Score: float64(created.UnixMilli()), Member: id})
		s.trim(ctx, pipe, ix)
	}
	s.count(ctx, pipe, "started", name)
	if _, err := pipe.Exec(ctx); err != nil {
		s.cfg.log.Warn("flow index update failed; List and the metrics correct it as they read", "flow_id", id, "error", err.Error())
	}
}

// Add adds the flow inside tx, the caller's PostgreSQL transaction,
// through package outbox: the flow exists if and only if tx commits. It is
// one outbox row, a start job (StartType, queue critical, job ID derived
// from the flow ID, so the relay's at-least-once delivery cannot start it
// twice) that the worker's Middleware runs as Start does.
func Add(ctx context.Context, tx pgx.Tx, f *Flow) error {
	t, err := startTask(f, time.Now())
	if err != nil {
		return err
	}
	if err := outbox.Add(ctx, tx, t); err != nil {
		return fmt.Errorf("flow %s: %w", f.ID(), err)
	}
	return nil
}

// startTask is the start job of f.
func startTask(f *Flow, created time.Time) (*tasks.Task, error) {
	b, err := json.Marshal(f.wire(created))
	if err != nil {
		return nil, fmt.Errorf("flow %s: encode: %w", f.ID(), err)
	}
	return tasks.NewSystemTask(StartType, StartType+":"+f.ID(), payloads.QueueCritical, b, startTimeout, nil), nil
}

// runStart is the start job's handler.
func (s *Store) runStart(ctx context.Context, c *tasks.Client, payload []byte) error {
	var w wireFlow
	if err := json.Unmarshal(payload, &w); err != nil {
		return fmt.Errorf("flow start job: payload: %v: %w", err, asynq.SkipRetry)
	}
	if len(w.Steps) == 0 || w.Name == "" || w.Key == "" {
		return fmt.Errorf("flow start job: payload has no flow: %w", asynq.SkipRetry)
	}
	for _, st := range w.Steps {
		if st.After == nil || st.Dependents == nil {
			return fmt.Errorf("flow start job %s: step %q: no dependency lists: %w", ID(w.Name, w.Key), st.Name, asynq.SkipRetry)
		}
	}
	_, err := s.start(ctx, c, w, nil)
	if errors.Is(err, ErrDuplicate) {
		return nil
	}
	return err
}
