package scheduler

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
)

// watchdog is the state of one process's dead-letter watchdog. It is used
// by the watchdog goroutine only.
type watchdog struct {
	insp *tasks.Inspector
	rc   redis.UniversalClient
	// prev is each queue's archived count at this process's last check.
	prev map[string]int
}

// runWatchdog checks at once (the baseline), then at every multiple of the
// interval, until ctx is done.
func (s *Scheduler) runWatchdog(ctx context.Context, w *watchdog) {
	period := s.now().Truncate(s.interval)
	s.check(ctx, w, period)
	for {
		period = laterOf(period.Add(s.interval), s.now().Truncate(s.interval))
		if !sleepUntil(ctx, s.now, period) {
			return
		}
		s.check(ctx, w, period)
	}
}

// shouldAlert: more archived jobs than the threshold, or more than at the
// previous check (known is false at the first check).
func shouldAlert(archived, previous int, known bool, threshold int) bool {
	return archived > threshold || (known && archived > previous)
}

// check reads the queue counts once and raises the alerts of period.
func (s *Scheduler) check(ctx context.Context, w *watchdog, period time.Time) {
	stats, err := w.insp.Stats(ctx)
	if err != nil {
		s.log.Warn("dead-letter watchdog: cannot read queue stats", "error", err)
		return
	}
	at := s.now().UTC()
	for _, q := range stats {
		prev, known := w.prev[q.Queue]
		w.prev[q.Queue] = q.Archived
		if !shouldAlert(q.Archived, prev, known, s.threshold) {
			continue
		}
		if !s.claim(ctx, w.rc, q.Queue, period) {
			s.log.Debug("dead-letter alert already raised by another process", "queue", q.Queue, "period", period.UTC().Format(time.RFC3339))
			continue
		}
		a := Alert{Type: AlertType, Queue: q.Queue, Archived: q.Archived, Threshold: s.threshold, At: at}
		previous := slog.Any("previous", nil)
		if known {
			a.Previous = &prev
			previous = slog.Int("previous", prev)
		}
		s.log.LogAttrs(ctx, slog.LevelError, "dead letters growing",
			slog.String("queue", q.Queue), slog.Int("archived", q.Archived), previous, slog.Int("threshold", s.threshold))
		if s.alert != nil {
			s.alert.post(ctx, s.log, a, alertID(q.Queue, period), s.now)
		}
	}
	s.log.Debug("dead-letter watchdog checked", "period", period.UTC().Format(time.RFC3339), "queues", len(stats))
}

// claim takes the alert of queue for period in Redis, so that of several
// processes one raises it. If Redis cannot answer, it claims: a double
// alert is better than none.
func (s *Scheduler) claim(ctx context.Context, rc redis.UniversalClient, queue string, period time.Time) bool {
	key := "escrowjobs:watchdog:" + queue + ":" + strconv.FormatInt(period.Unix(), 10)
	ttl := max(2*s.interval, 10*time.Second)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ok, err := rc.SetNX(ctx, key, "1", ttl).Result()
	if err != nil {
		s.log.Warn("dead-letter watchdog: cannot claim the alert in Redis; alerting anyway", "queue", queue, "error", err)
		return true
	}
	return ok
}
