package flows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/internal/historyindex"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
)

// DefaultRetention is how long a flow's state is kept after its last
// change: the dead-letter retention (deadletter's default, 90 days), so a
// failed flow is there for as long as its dead letter.
const DefaultRetention = 90 * 24 * time.Hour

// ErrDuplicate is returned by Start (and Add's start job) for a flow ID
// that exists, also one that ended within the retention. The ID returned
// alongside it is the existing flow's.
var ErrDuplicate = errors.New("duplicate flow")

// ErrNotFound is returned for a flow ID that does not exist (or expired),
// and for a step the flow does not have.
var ErrNotFound = errors.New("flow not found")

// Flow states (View.State).
const (
	StateRunning   = "running"
	StateCompleted = "completed"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
)

// Step states (StepView.State). waiting, pending, completed, failed,
// blocked and cancelled are the flow's own; Status shows asynq's active,
// scheduled and retry for a pending step whose job is in that state.
const (
	StepWaiting   = "waiting"
	StepPending   = "pending"
	StepActive    = "active"
	StepScheduled = "scheduled"
	StepRetry     = "retry"
	StepCompleted = "completed"
	StepFailed    = "failed"
	StepBlocked   = "blocked"
	StepCancelled = "cancelled"
)

// Redis keys. Every one of them has an expiry.
const (
	flowKeyPrefix = "escrowjobs:flow:"
	// indexAll holds every flow ID by creation time (Unix ms), indexRunning
	// the running ones, indexFailed the failed ones; statsKey the counters
	// of the metrics (field "<event>:<name>"). The indexes share one hash
	// tag, so the script that moves a flow between them (addIndex) runs
	// on one Cluster node.
	indexAll     = "escrowjobs:flows:{index}:all"
	indexRunning = "escrowjobs:flows:{index}:running"
	indexFailed  = "escrowjobs:flows:{index}:failed"
	statsKey     = "escrowjobs:flows:counts"
)

// flowKey is the hash of one flow; its hash tag is the flow ID.
func flowKey(id string) string { return flowKeyPrefix + "{" + id + "}" }

// Option configures a Store or a Start.
type Option func(*config)

type config struct {
	retention time.Duration
	wait      int
	log       *slog.Logger
	client    *tasks.Client
}

func newConfig(opts []Option) config {
	c := config{retention: DefaultRetention, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Retention sets how long a flow's state is kept after its last change
// (DefaultRetention; zero or negative keeps the default). Give the same to
// Start, Add's store and the worker's store: DEAD_LETTER_RETENTION.
func Retention(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.retention = d
		}
	}
}

// WaitReplicas makes every write of a flow's state wait until n replicas
// acknowledged it (Redis WAIT, within the call's deadline), else fail with
// an error that errors.Is tasks.ErrNotReplicated, so that a failover
// cannot lose an advancement (REDIS_WAIT_REPLICAS). Start and Middleware
// wait for at least as many as their tasks.Client does.
func WaitReplicas(n int) Option { return func(c *config) { c.wait = max(n, 0) } }

// Logger sets the logger of the Store's middleware (default: discard).
func Logger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithClient gives a Store the client that enqueues the on-failure steps
// Failed makes ready (Middleware's client when not given).
func WithClient(c *tasks.Client) Option { return func(cfg *config) { cfg.client = c } }

// Store reads flows and records what happens to their steps. It is safe
// for concurrent use.
type Store struct {
	rc  redis.UniversalClient
	in  *tasks.Inspector
	cfg config

	// hook, when set, runs at named points of an advancement; an error
	// stops it there (crash tests).
	hook func(point string) error

	gauge  *oldestGauge
	client atomic.Pointer[tasks.Client] // enqueues the steps Failed makes ready
}

// NewStore reads and writes flows on rc (the Redis of the jobs). in, when
// not nil, adds asynq's view of each step's job to Status.
func NewStore(rc redis.UniversalClient, in *tasks.Inspector, opts ...Option) *Store {
	s := &Store{rc: rc, in: in, cfg: newConfig(opts)}
	if s.cfg.client != nil {
		s.client.Store(s.cfg.client)
	}
	s.gauge = &oldestGauge{s: s}
	s.gauge.descs, s.gauge.oldestDesc = newDescs()
	return s
}

// transition is the outcome of transitionScript.
type transition struct {
	old, now string
	ready    []taskSpec // the jobs the caller enqueues
	inlined  int        // the jobs the script enqueued itself (one Redis)
}

// apply runs transitionScript (and WAIT). On one Redis the script also
// enqueues the jobs a complete makes ready and updates the indexes and
// counters; on a Cluster they are in other slots, so apply updates the
// indexes and counters after it when the flow's state changed, and the
// caller enqueues tr.ready. trace are the trace headers of the jobs the
// script enqueues (traceArgs).
func (s *Store) apply(ctx context.Context, wait int, op, flowID, step, reason string, trace []any) (transition, error) {
	now := time.Now()
	inline := ""
	if !isCluster(s.rc) {
		inline = "1"
	}
	name, _, _ := cutID(flowID)
	args := append([]any{op, step, now.UnixMilli(), s.cfg.retention.Milliseconds(), reason,
		inline, strconv.FormatInt(now.UnixNano(), 10), flowID, name, indexAll, indexRunning, indexFailed, statsKey,
		historyindex.Stamp(now)}, trace...)
	res, err := evalWait(ctx, s.rc, max(wait, s.cfg.wait), transitionScript, flowKey(flowID), args...)
	if err != nil {
		return transition{}, fmt.Errorf("flow %s: %s %s: %w", flowID, op, step, err)
	}
	vals, _ := res.([]any)
	if len(vals) < 4 {
		return transition{}, fmt.Errorf("flow %s: %s %s: unexpected answer %v", flowID, op, step, res)
	}
	str := func(v any) string { x, _ := v.(string); return x }
	tr := transition{old: str(vals[0]), now: str(vals[1])}
	switch str(vals[2]) {
	case "noflow":
		return tr, fmt.Errorf("flow %s: %w", flowID, ErrNotFound)
	case "nostep":
		return tr, fmt.Errorf("flow %s: step %q: %w", flowID, step, ErrNotFound)
	}
	n, _ := vals[3].(int64)
	tr.inlined = int(n)
	for _, v := range vals[4:] {
		spec, err := decodeSpec(str(v))
		if err != nil {
			return tr, fmt.Errorf("flow %s: %w", flowID, err)
		}
		tr.ready = append(tr.ready, spec)
	}
	if tr.old != tr.now && inline == "" {
		s.stateChanged(ctx, flowID, tr.old, tr.now)
	}
	return tr, nil
}

// stateChanged moves the flow between the indexes and counts the
// transition. These keys are in other hash slots than the flow's, so they
// are written after its script: a crash in between leaves an index
// behind, which List and the metrics correct as they read.
func (s *Store) stateChanged(ctx context.Context, flowID, old, now string) {
	name, _, _ := cutID(flowID)
	pipe := s.rc.Pipeline()
	switch now {
	case StateRunning:
		pipe.ZRem(ctx, indexFailed, flowID)
		s.addIndex(ctx, pipe, indexRunning, flowID)
	case StateFailed:
		pipe.ZRem(ctx, indexRunning, flowID)
		s.addIndex(ctx, pipe, indexFailed, flowID)
	default:
		pipe.ZRem(ctx, indexRunning, flowID)
		pipe.ZRem(ctx, indexFailed, flowID)
	}
	if now != StateRunning || old == "" {
		s.count(ctx, pipe, eventOf(now), name)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.cfg.log.Warn("flow index update failed; List and the metrics correct it as they read", "flow_id", flowID, "error", err.Error())
	}
}

// addIndex adds flowID to index under its creation time (XX: only when it
// is there; a flow is added to every index by Start).
func (s *Store) addIndex(ctx context.Context, pipe redis.Pipeliner, index, flowID string) {
	pipe.Eval(ctx, `
local created = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not created then created = ARGV[2] end
redis.call('ZADD', KEYS[1], created, ARGV[1])
return 1`, []string{index, indexAll}, flowID, time.Now().UnixMilli())
	s.trim(ctx, pipe, index)
}

// trim drops index members older than the retention and refreshes the
// index's expiry.
func (s *Store) trim(ctx context.Context, pipe redis.Pipeliner, index string) {
	pipe.ZRemRangeByScore(ctx, index, "-inf", strconv.FormatInt(time.Now().Add(-s.cfg.retention).UnixMilli(), 10))
	pipe.PExpire(ctx, index, s.cfg.retention)
}

func (s *Store) count(ctx context.Context, pipe redis.Pipeliner, event, name string) {
	if event == "" {
		return
	}
	pipe.HIncrBy(ctx, statsKey, event+":"+name, 1)
	pipe.PExpire(ctx, statsKey, s.cfg.retention)
}

func eventOf(state string) string {
	switch state {
	case StateRunning:
		return "started"
	case StateCompleted, StateFailed, StateCancelled:
		return state
	}
	return ""
}

// cutID splits a flow ID into name and key.
func cutID(id string) (name, key string, ok bool) {
	for i := 0; i < len(id); i++ {
		if id[i] == ':' {
			return id[:i], id[i+1:], true
		}
	}
	return id, "", false
}

// Failed records that the job of step was dead-lettered (permanent or
// exhausted) with reason: the step is failed, its dependents that have not
// completed are blocked, the flow is failed, and its on-failure steps are
// enqueued, once per flow, carrying step and reason (FailureOf) and the
// regular steps completed by then (CompletedStepsOf), with the
// Store's client (WithClient, or the one given to Middleware). The worker
// calls it wherever it dead-letters a job of a flow (worker.Config.Flows).
// Calling it again is harmless.
func (s *Store) Failed(ctx context.Context, flowID, step, reason string) error {
	c := s.client.Load()
	wait := 0
	if c != nil {
		wait = c.ReplicasToWait()
	}
	reason = payloads.MaskEmailsString(reason)
	tr, err := s.apply(ctx, wait, "fail", flowID, step, reason, nil)
	if err != nil {
		return err
	}
	if len(tr.ready) == 0 {
		return nil
	}
	// The on-failure steps can say why (FailureOf) and what had happened
	// by then (CompletedStepsOf). A flow that cannot be read now still gets
	// its on-failure steps, without the list.
	var completed []string
	if v, err := s.Status(ctx, flowID); err == nil {
		completed = completedSteps(v)
	} else {
		s.cfg.log.Warn("flow failed: its completed steps could not be read for the on-failure steps", "flow_id", flowID, "error", err.Error())
	}
	for i := range tr.ready {
		tr.ready[i] = withFailure(tr.ready[i], step, reason, completed)
	}
	if c == nil {
		return fmt.Errorf("flow %s: %d on-failure step(s) to enqueue, but the store has no client (WithClient)", flowID, len(tr.ready))
	}
	return s.enqueueAll(ctx, c, flowID, tr.ready)
}

// Requeued records that step's dead letter was requeued (its job runs
// again): the step is pending, its blocked dependents are waiting again
// (those with no other failed dependency), and the flow is running when
// no other step is failed. When the step then succeeds, its dependents
// run.
func (s *Store) Requeued(ctx context.Context, flowID, step string) error {
	_, err := s.apply(ctx, 0, "requeue", flowID, step, "", nil)
	return err
}

// Discarded records that step's dead letter was discarded (resolved
// without a rerun): the step, the blocked steps and those still waiting
// are cancelled, and so is the flow. Steps already enqueued still run.
func (s *Store) Discarded(ctx context.Context, flowID, step string) error {
	_, err := s.apply(ctx, 0, "discard", flowID, step, "", nil)
	return err
}

// Entry fills in the flow and step of a dead letter from its job's headers.
func Entry(e deadletter.Entry, headers map[string]string) deadletter.Entry {
	if f, st, ok := Of(headers); ok {
		e.Flow, e.Step = f, st
	}
	return e
}
