package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Defaults of Config.
const (
	DefaultWatchdogInterval  = time.Minute
	DefaultArchivedThreshold = 100
)

// Config configures a Scheduler. Redis is required; the rest has defaults.
type Config struct {
	// Redis is where jobs are enqueued and queues inspected.
	Redis asynq.RedisConnOpt
	// ClientOptions configure the client that enqueues the periodic jobs
	// (e.g. tasks.WaitReplicas from REDIS_WAIT_REPLICAS).
	ClientOptions []tasks.ClientOption
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Entries are the periodic jobs (see Periodic and LoadEntries).
	Entries []Entry
	// WatchdogInterval is how often the dead-letter watchdog checks the
	// queues; checks are aligned to multiples of it. Default one minute.
	WatchdogInterval time.Duration
	// ArchivedThreshold: a queue with more archived jobs than this raises
	// an alert at every check, grown or not. Default 100.
	ArchivedThreshold int
	// AlertURL (ALERT_WEBHOOK_URL), when set, receives every alert as a
	// signed JSON POST. It is the operator's and may be on a private network.
	AlertURL string
	// AlertSecret (ALERT_WEBHOOK_SECRET) is the whsec_<base64> signing
	// secret; required with AlertURL.
	AlertSecret string
	// AlertClient posts alerts; default an http.Client with AlertTimeout.
	AlertClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Scheduler runs the periodic jobs and the dead-letter watchdog.
type Scheduler struct {
	redis     asynq.RedisConnOpt
	clientOpt []tasks.ClientOption
	log       *slog.Logger
	entries   []entry
	interval  time.Duration
	threshold int
	alert     *alerter // nil without AlertURL
	now       func() time.Time
	started   atomic.Bool
}

// New checks cfg (every entry is parsed and built once) and returns a
// Scheduler ready to Run.
func New(cfg Config) (*Scheduler, error) {
	s := &Scheduler{
		redis: cfg.Redis, clientOpt: cfg.ClientOptions, log: cfg.Logger, interval: cfg.WatchdogInterval,
		threshold: cfg.ArchivedThreshold, now: cfg.Now,
	}
	if s.redis == nil {
		return nil, errors.New("scheduler: Redis is required")
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch {
	case s.interval == 0:
		s.interval = DefaultWatchdogInterval
	case s.interval < time.Second:
		return nil, fmt.Errorf("scheduler: WatchdogInterval %s: want at least 1s", s.interval)
	}
	switch {
	case s.threshold == 0:
		s.threshold = DefaultArchivedThreshold
	case s.threshold < 0:
		return nil, fmt.Errorf("scheduler: ArchivedThreshold %d: must not be negative", s.threshold)
	}
	var errs []error
	seen := map[string]bool{}
	for _, e := range cfg.Entries {
		if seen[e.Name] {
			errs = append(errs, fmt.Errorf("entry %q: name: is used twice", e.Name))
			continue
		}
		seen[e.Name] = true
		ce, err := checkEntry(e, s.now())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.entries = append(s.entries, ce)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	if cfg.AlertURL != "" {
		a, err := newAlerter(cfg.AlertURL, cfg.AlertSecret, cfg.AlertClient)
		if err != nil {
			return nil, fmt.Errorf("scheduler: %w", err)
		}
		s.alert = a
	} else if cfg.AlertSecret != "" {
		return nil, errors.New("scheduler: AlertSecret (ALERT_WEBHOOK_SECRET) is set but AlertURL (ALERT_WEBHOOK_URL) is not")
	}
	return s, nil
}

// Run enqueues the periodic jobs and runs the watchdog until ctx is done,
// then returns nil. Redis errors are logged and retried at the next period;
// they never end Run. Run may be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run called twice")
	}
	client := tasks.NewClient(s.redis, s.clientOpt...)
	defer client.Close()
	insp := tasks.NewInspector(s.redis)
	defer insp.Close()
	rc, ok := s.redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return fmt.Errorf("scheduler: unsupported Redis option %T", s.redis)
	}
	defer rc.Close()

	attrs := []any{"entries", len(s.entries), "watchdog_interval", s.interval.String(), "archived_threshold", s.threshold}
	if s.alert != nil {
		attrs = append(attrs, "alert_host", s.alert.host)
	}
	s.log.Info("scheduler started", attrs...)
	var wg sync.WaitGroup
	for _, e := range s.entries {
		wg.Go(func() { s.runEntry(ctx, client, e) })
	}
	wg.Go(func() { s.runWatchdog(ctx, &watchdog{insp: insp, rc: rc, prev: map[string]int{}}) })
	wg.Wait()
	s.log.Info("scheduler stopped")
	return nil
}

// runEntry fires e at each of its scheduled times until ctx is done.
func (s *Scheduler) runEntry(ctx context.Context, c *tasks.Client, e entry) {
	next := e.sched.Next(s.now().UTC())
	for !next.IsZero() {
		if !sleepUntil(ctx, s.now, next) {
			return
		}
		following := e.sched.Next(laterOf(s.now().UTC(), next))
		s.fire(ctx, c, e, next, following)
		if now := s.now().UTC(); following.Before(now) {
			s.log.Warn("periodic job: periods skipped, the process was late", "entry", e.name, "late_until", now.Format(time.RFC3339))
			following = e.sched.Next(now)
		}
		next = following
	}
	s.log.Warn("periodic job: no more fire times", "entry", e.name)
}

// enqueueAttempts bounds the enqueue attempts for one period.
const enqueueAttempts = 3

// fire enqueues e's job for period, retrying a failed enqueue a few times
// while the next period (deadline) is not near.
func (s *Scheduler) fire(ctx context.Context, c *tasks.Client, e entry, period, deadline time.Time) {
	p := period.Format(time.RFC3339)
	t, err := e.build(period, tasks.DedupeKey(periodKey(e.name, period)))
	if err != nil {
		s.log.Error("periodic job: build", "entry", e.name, "period", p, "error", err)
		return
	}
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		id, err := c.Enqueue(ctx, t)
		switch {
		case err == nil:
			s.log.Info("periodic job enqueued", "entry", e.name, "task_id", id, "period", p)
			return
		case errors.Is(err, tasks.ErrDuplicate):
			s.log.Debug("periodic job already enqueued by another process", "entry", e.name, "task_id", id, "period", p)
			return
		}
		if attempt == enqueueAttempts || ctx.Err() != nil || !s.now().Add(backoff).Before(deadline) {
			s.log.Error("periodic job not enqueued", "entry", e.name, "task_id", t.ID, "period", p, "attempts", attempt, "error", err)
			return
		}
		s.log.Warn("periodic job: enqueue failed, retrying", "entry", e.name, "task_id", t.ID, "period", p, "attempt", attempt, "error", err)
		if !retry.Wait(ctx, backoff) {
			return
		}
		backoff *= 2
	}
}

// sleepUntil waits until the clock reads t; false if ctx ended first.
func sleepUntil(ctx context.Context, now func() time.Time, t time.Time) bool {
	return retry.Wait(ctx, t.Sub(now()))
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
