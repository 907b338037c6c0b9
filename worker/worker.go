// Package worker runs the asynq servers that process escrow jobs.
//
// One Worker is one process's share of the work: FetchLoops asynq.Servers
// sharing one Redis connection pool and dividing Concurrency between them
// (asynq fetches one job per Redis round trip per server, so several fetch
// loops process more than one server with the same total concurrency).
//
// Wake-up on enqueue: tasks.Client announces every job on a pub/sub
// channel of its queue; the process holds one subscription, and a go-redis
// hook on the worker's client holds idle fetch loops inside asynq's
// dequeue call until a wake-up arrives, so a job starts about a
// millisecond after its enqueue while an idle process sends Redis a few
// commands a second. The loops still poll every FallbackPoll (one EXISTS
// for the whole process), so a lost wake-up costs at most that; without a
// subscription (DisableWake, or while it is being re-established) they
// poll every PollInterval. The same hook answers the dequeue script of a
// queue known empty without running it, and runs asynq's forwarder's
// scripts only when a scheduled or retry job is due (see wake.go).
//
// Under load, asynq's per-job commands from all loops and handlers (the
// dequeue and completion scripts, result writes) share round trips: a
// second hook sends the commands issued while one is in flight together
// in the next pipeline (internal/combine).
//
// The worker adds to asynq what payment side effects need:
//
//   - Exact retry timing. asynq stores retry times in whole seconds; the
//     worker records the precise time a retry is due and holds the retry
//     until then, so retries run 2 s, 4 s and 8 s after each failure, never
//     early and only milliseconds late (or after the peer's Retry-After).
//   - Durable dead letters. Every job asynq archives (retries exhausted or a
//     permanent failure) is recorded in the dead-letter ledger, with its
//     exact payload.
//   - No effect twice after a Redis outage: a job that finishes while Redis
//     is down is held until Redis answers, so asynq's one write of its
//     outcome lands, but never past shortly before the job's deadline; if
//     Redis is still down then, a completion marker is written as soon as
//     it is back, and asynq's rerun of the job finds it and does nothing
//     (done.go).
//   - A sweep every 30 s pages through asynq's archive, looks once at each
//     archival it has not dealt with (kept by job ID and archive score, so
//     no clock skew between processes hides one), and records what the
//     ledger lacks: the jobs asynq's
//     recoverer archived itself (their worker died during the last
//     attempt), or any archival whose record was lost. A job archived after
//     it had finished (its completion marker exists) is not a dead letter:
//     the sweep drops it from the archive.
//   - Logs with task_type, task_id, queue and attempt, e-mails masked.
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/internal/combine"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Defaults of Config.
const (
	DefaultConcurrency     = 50
	DefaultFetchLoops      = 4
	DefaultPollInterval    = 10 * time.Millisecond
	DefaultFallbackPoll    = time.Second
	DefaultShutdownTimeout = 25 * time.Second
	// forwardInterval is how often the first loop moves due scheduled and
	// retry jobs to pending. The retry gate makes retries exact regardless.
	// The hook skips the Redis scripts unless a job is due (wake.go).
	forwardInterval = 250 * time.Millisecond
	// loopPause is asynq's own pause after a dequeue round that found
	// nothing (TaskCheckInterval): the hook has done the waiting already.
	loopPause = 20 * time.Microsecond
)

// Queues are the queue weights: critical 6, default 3, low 1.
func Queues() map[string]int {
	return map[string]int{payloads.QueueCritical: 6, payloads.QueueDefault: 3, payloads.QueueLow: 1}
}

// Config configures a Worker. Redis, DeadLetters and Logger are required;
// a number that is zero or negative takes its Default value.
type Config struct {
	Redis asynq.RedisConnOpt
	// Concurrency is the total number of jobs processed at once.
	Concurrency int
	// FetchLoops is the number of asynq servers sharing Concurrency (at
	// most Concurrency).
	FetchLoops int
	// PollInterval is how often idle fetch loops poll empty queues when no
	// wake-ups are heard (DisableWake, or the subscription is down).
	PollInterval time.Duration
	// FallbackPoll is how often idle fetch loops poll anyway while wake-ups
	// are heard: the longest a job whose wake-up was lost waits.
	FallbackPoll time.Duration
	// DisableWake turns wake-up on enqueue off: no subscription, idle loops
	// poll every PollInterval.
	DisableWake bool
	// ShutdownTimeout bounds how long in-flight jobs may run after Shutdown;
	// unfinished ones go back to the queue.
	ShutdownTimeout time.Duration
	// Queues overrides the queue weights (nil: Queues()).
	Queues map[string]int
	// DeadLetters records every archived job (a deadletter.Ledger).
	// Required.
	DeadLetters Recorder
	// Archived, when set, is told about every archived job after it is in
	// DeadLetters, with its last error (webhook redelivery).
	Archived func(ctx context.Context, id, taskType string, payload []byte, err error)
	// Flows, when set, is told about every dead-lettered job of a flow
	// (its HeaderFlow and HeaderStep headers), after it is in DeadLetters:
	// the flow fails and its on-failure steps run (a *flows.Store). Its
	// advancement is the handler's part: give New a handler wrapped in the
	// store's Middleware, so that it runs inside the retry gate and a
	// job's completion always includes it.
	Flows FlowFailures
	// DoneMarkersPath, when set, is a file that keeps the completion
	// markers of jobs that finished while Redis was down (see done.go)
	// until Redis has them, across a crash or restart of this process.
	// Processes given one path each take a file of their own beside it
	// (path, then "<name>-2<ext>", …) and adopt those of stopped ones;
	// "" keeps them in memory only.
	DoneMarkersPath string
	// Logger is required.
	Logger *slog.Logger
}

// Recorder records dead letters; recording one twice is a no-op
// (deadletter.Ledger).
type Recorder interface {
	Record(ctx context.Context, e deadletter.Entry) (bool, error)
}

// FlowFailures records that a step of a flow failed for good (flows.Store).
// Calling it twice for one failure is harmless.
type FlowFailures interface {
	Failed(ctx context.Context, flowID, step, reason string) error
}

// Worker processes jobs until Shutdown.
type Worker struct {
	cfg     Config
	rc      redis.UniversalClient
	idle    *emptyQueues
	sub     *subscriber
	stopSub context.CancelFunc
	subDone chan struct{}
	servers []*asynq.Server
	handler asynq.Handler
	once    sync.Once

	redisOK atomic.Int64 // unix nanos of the last PING answered
	running atomic.Bool  // every fetch loop started and none stopped (Ready)
	done    *doneMarkers // completion markers waiting for Redis

	sweepEvery time.Duration
	stopSweep  context.CancelFunc
	swept      chan struct{}
}

// New prepares a worker that processes jobs with h (handlers.NewServeMux).
func New(cfg Config, h asynq.Handler) (*Worker, error) {
	switch {
	case cfg.Redis == nil:
		return nil, errors.New("worker: no Redis connection configured")
	case cfg.DeadLetters == nil:
		return nil, errors.New("worker: no dead-letter log configured")
	case cfg.Logger == nil:
		return nil, errors.New("worker: no logger configured")
	}
	// Unset (zero or negative) numbers take their defaults.
	cfg.Concurrency = cmp.Or(max(cfg.Concurrency, 0), DefaultConcurrency)
	cfg.FetchLoops = min(cmp.Or(max(cfg.FetchLoops, 0), DefaultFetchLoops), cfg.Concurrency)
	cfg.PollInterval = cmp.Or(max(cfg.PollInterval, 0), DefaultPollInterval)
	cfg.FallbackPoll = cmp.Or(max(cfg.FallbackPoll, 0), DefaultFallbackPoll)
	cfg.ShutdownTimeout = cmp.Or(max(cfg.ShutdownTimeout, 0), DefaultShutdownTimeout)
	if cfg.Queues == nil {
		cfg.Queues = Queues()
	}
	rc, err := newRedisClient(cfg.Redis)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cfg.Queues))
	for q := range cfg.Queues {
		names = append(names, q)
	}
	done := newDoneMarkers()
	if cfg.DoneMarkersPath != "" {
		if done, err = openDoneMarkers(cfg.DoneMarkersPath, cfg.Logger); err != nil {
			rc.Close()
			return nil, err
		}
	}
	w := &Worker{cfg: cfg, rc: rc, sweepEvery: SweepInterval, done: done}
	w.idle = newEmptyQueues(rc, names, cfg.PollInterval, cfg.FallbackPoll)
	rc.AddHook(w.idle)
	// The combiner's answers do not vouch for Redis (only a PING does): an
	// answer to a command sent before Redis died would let a job that took
	// effect during the outage settle without its completion marker, and
	// asynq's rerun after recovery would repeat the effect
	// (TestOutageLongerThanTheJobTimeoutDoublesNoEffect).
	rc.AddHook(combine.New(rc, combineFlights, combine.AsynqCommand))
	if !cfg.DisableWake {
		w.sub = &subscriber{rc: rc, e: w.idle}
	}
	w.handler = w.retryGate(h)
	for i := 0; i < cfg.FetchLoops; i++ {
		n := cfg.Concurrency / cfg.FetchLoops
		if i < cfg.Concurrency%cfg.FetchLoops {
			n++
		}
		c := asynq.Config{
			Concurrency:     n,
			Queues:          cfg.Queues,
			RetryDelayFunc:  retryDelay,
			IsFailure:       isFailure,
			ErrorHandler:    asynq.ErrorHandlerFunc(w.handleError),
			Logger:          asynqLogger{l: cfg.Logger.With("component", "asynq")},
			LogLevel:        asynq.WarnLevel,
			ShutdownTimeout: cfg.ShutdownTimeout,
			// The hook makes idle loops wait; only the first forwards often.
			TaskCheckInterval:        loopPause,
			DelayedTaskCheckInterval: 5 * time.Second,
			JanitorInterval:          time.Minute,
		}
		if i == 0 {
			c.DelayedTaskCheckInterval = forwardInterval
			c.JanitorInterval = 0 // asynq's 8 s
		}
		w.servers = append(w.servers, asynq.NewServerFromRedisClient(rc, c))
	}
	return w, nil
}

// Start starts every fetch loop.
func (w *Worker) Start() error {
	if w.sub != nil {
		ctx, cancel := context.WithCancel(context.Background())
		w.stopSub, w.subDone = cancel, make(chan struct{})
		go func() { defer close(w.subDone); w.sub.run(ctx, w.idle.queues()) }()
	}
	for i, s := range w.servers {
		if err := s.Start(w.handler); err != nil {
			w.idle.close()
			for _, started := range w.servers[:i] {
				started.Shutdown()
			}
			w.stopSubscriber()
			return fmt.Errorf("worker: start fetch loop %d: %w", i, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.stopSweep, w.swept = cancel, make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { w.sweepLoop(ctx) })
	bg.Go(func() { w.flushDone(ctx) })
	go func() { bg.Wait(); close(w.swept) }()
	w.running.Store(true)
	w.cfg.Logger.Info("worker started", "concurrency", w.cfg.Concurrency, "fetch_loops", len(w.servers), "queues", w.cfg.Queues)
	return nil
}

// Shutdown stops taking jobs, waits up to ShutdownTimeout for in-flight
// ones and returns the rest to their queues. It is safe to call twice.
func (w *Worker) Shutdown() {
	w.once.Do(func() {
		w.running.Store(false)
		w.idle.close() // release fetch loops waiting for a wake-up
		var wg sync.WaitGroup
		for _, s := range w.servers {
			wg.Add(1)
			go func() { defer wg.Done(); s.Shutdown() }()
		}
		wg.Wait()
		// After the servers: jobs finishing during shutdown may still
		// leave completion markers to write.
		if w.stopSweep != nil {
			w.stopSweep()
			<-w.swept
		}
		w.stopSubscriber()
		_ = w.rc.Close()
		w.done.close()
		w.cfg.Logger.Info("worker stopped")
	})
}

// Run starts the worker, blocks until ctx is done, then shuts down.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	w.Shutdown()
	return nil
}

func (w *Worker) stopSubscriber() {
	if w.stopSub != nil {
		w.stopSub()
		<-w.subDone
	}
}

func retryKey(id string) string { return "escrowjobs:retry-at:" + id }

// handleError runs after every failed attempt, before asynq schedules the
// retry or archives the job.
func (w *Worker) handleError(ctx context.Context, t *asynq.Task, err error) {
	ctx = context.WithoutCancel(ctx)
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	attrs := handlers.TaskAttrs(ctx, t.Type())
	if errors.Is(err, asynq.RevokeTask) {
		return
	}
	if until, ok := waitUntil(err); ok && retried < maxRetry {
		// Not a failed attempt: asynq brings the job back (isFailure) at
		// the whole second retryDelay rounded up to; let the forwarder
		// gate know, so the job is not held up to its 5 s poll.
		w.idle.expectRetry(queue, wholeSecondAfter(until))
		return
	}
	permanent := errors.Is(err, asynq.SkipRetry)
	if permanent || retried >= maxRetry {
		why := deadletter.WhyExhausted
		if permanent {
			why = deadletter.WhyPermanent
		}
		e := flows.Entry(deadletter.Entry{
			ID: id, Type: t.Type(), Queue: queue, Run: t.Headers()[deadletter.RunHeader], Payload: t.Payload(),
			Error: payloads.MaskEmailsString(err.Error()), Attempts: retried + 1, Why: why, FailedAt: time.Now(),
		}, t.Headers())
		if e.Flow != "" {
			attrs = append(attrs, slog.String("flow_id", e.Flow), slog.String("step", e.Step))
		}
		if _, derr := w.cfg.DeadLetters.Record(ctx, e); derr != nil {
			w.cfg.Logger.LogAttrs(ctx, slog.LevelError, "dead-letter ledger write failed; the job is still in asynq's archive and the sweep will record it",
				append(attrs, slog.String("error", payloads.MaskEmailsString(derr.Error())))...)
		}
		w.cfg.Logger.LogAttrs(ctx, slog.LevelError, "job archived", append(attrs,
			slog.String("why", why), slog.String("error", payloads.MaskEmailsString(err.Error())))...)
		w.flowFailed(ctx, e, attrs)
		if w.cfg.Archived != nil {
			w.cfg.Archived(ctx, id, t.Type(), t.Payload(), err)
		}
		return
	}
	due := time.Now().Add(retry.Delay(retried, err))
	w.idle.expectRetry(queue, due)
	if serr := w.rc.Set(ctx, retryKey(id), strconv.FormatInt(due.UnixNano(), 10), time.Until(due)+time.Hour).Err(); serr != nil {
		w.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "could not record retry time; the retry may run up to 1 s early",
			append(attrs, slog.String("error", serr.Error()))...)
	}
}

// flowFailed tells Config.Flows that the dead letter e's flow step failed.
// When that fails, the archive sweep tells it again (sweep.go).
func (w *Worker) flowFailed(ctx context.Context, e deadletter.Entry, attrs []slog.Attr) {
	if w.cfg.Flows == nil || e.Flow == "" {
		return
	}
	if err := w.cfg.Flows.Failed(ctx, e.Flow, e.Step, e.Error); err != nil {
		w.cfg.Logger.LogAttrs(ctx, slog.LevelError, "could not record the failed flow step; the archive sweep tries again",
			append(attrs, slog.String("error", payloads.MaskEmailsString(err.Error())))...)
	}
}

// retryGate holds a retry until the exact time handleError recorded for it
// (asynq releases retries at whole seconds, up to a second early), returns
// at once for a rerun of a job that already finished (its completion
// marker, see done.go), and settles a finished job (settle).
func (w *Worker) retryGate(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		growStack()
		if n, _ := asynq.GetRetryCount(ctx); n > 0 {
			id, _ := asynq.GetTaskID(ctx)
			// One round trip; a pipeline, not MGET, as the two keys may
			// be on different Cluster shards.
			pipe := w.rc.Pipeline()
			retryAt, done := pipe.Get(ctx, retryKey(id)), pipe.Exists(ctx, doneKey(id))
			_, _ = pipe.Exec(ctx)
			if n, err := done.Result(); err == nil && n > 0 {
				w.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "job had finished before its outcome was lost; not running it again",
					handlers.TaskAttrs(ctx, t.Type())...)
				return nil
			}
			if v, err := retryAt.Result(); err == nil {
				if ns, perr := strconv.ParseInt(v, 10, 64); perr == nil {
					if !retry.Wait(ctx, time.Until(time.Unix(0, ns))) {
						return ctx.Err()
					}
				}
			}
		}
		err := next.ProcessTask(ctx, t)
		w.settle(ctx, t, err)
		return err
	})
}

// Bounds of awaitRedis.
const (
	// redisFresh: a PING this recent vouches for Redis; under load that is
	// at most one extra PING per 20 ms per process.
	redisFresh = 20 * time.Millisecond
	// maxHold bounds the hold of a job without a deadline; it stays inside
	// asynq's 30 s lease.
	maxHold = 20 * time.Second
)

// awaitRedis returns true when Redis answers, or false at until. A job
// returns to asynq right after its handler, and asynq writes "done" (or
// the retry) once: holding the finished job until Redis is back lets that
// one write land (see done.go for when it cannot).
func (w *Worker) awaitRedis(t *asynq.Task, until time.Time) bool {
	for warned := false; ; {
		ctx, cancel := context.WithTimeout(context.Background(), min(500*time.Millisecond, max(time.Until(until), 10*time.Millisecond)))
		err := w.rc.Ping(ctx).Err()
		cancel()
		if err == nil {
			w.redisOK.Store(time.Now().UnixNano())
			return true
		}
		if !time.Now().Before(until) {
			return false
		}
		if !warned {
			w.cfg.Logger.Warn("Redis unreachable; holding a finished job until it is back (at most until shortly before the job's deadline)", "task_type", t.Type(), "error", err)
			warned = true
		}
		time.Sleep(min(100*time.Millisecond, max(time.Until(until), 0)))
	}
}

// combineFlights is the limit of round trips of asynq's per-job commands
// in flight (internal/combine).
const combineFlights = 2
