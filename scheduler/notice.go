package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// noticeKey is the Redis list of alerts raised by worker processes (a
// partner disabled after 410 Gone, a webhook dead letter that used every
// redelivery step), posted by the watchdog at its next check.
const noticeKey = "escrowjobs:alerts:pending"

// Notice is an alert raised outside the watchdog's own count, in the JSON
// body posted to AlertURL (signed like the dead-letter alerts).
type Notice struct {
	// Type is the alert kind, e.g. "escrowjobs.partner_disabled" or
	// "escrowjobs.redelivery_exhausted".
	Type    string    `json:"type"`
	Partner string    `json:"partner,omitempty"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	// ID is the alert's webhook-id: the same for a retry of the post.
	ID string `json:"id"`
}

// PushNotice queues an alert for the watchdog. Any process may call it;
// one watchdog posts it once.
func PushNotice(ctx context.Context, rc redis.UniversalClient, n Notice) error {
	if n.At.IsZero() {
		n.At = time.Now().UTC()
	}
	if n.ID == "" {
		n.ID = fmt.Sprintf("notice-%d", n.At.UnixNano())
	}
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	return rc.LPush(ctx, noticeKey, b).Err()
}

// postNotices posts (or logs, without AlertURL) the queued notices. RPOP
// hands each notice to one process.
func (s *Scheduler) postNotices(ctx context.Context, rc redis.UniversalClient) {
	for range 100 {
		v, err := rc.RPop(ctx, noticeKey).Result()
		if err != nil {
			if err != redis.Nil {
				s.log.Warn("watchdog: cannot read queued alerts", "error", err)
			}
			return
		}
		var n Notice
		if err := json.Unmarshal([]byte(v), &n); err != nil {
			continue
		}
		s.log.LogAttrs(ctx, slog.LevelError, "alert", slog.String("type", n.Type), slog.String("partner", n.Partner), slog.String("reason", n.Reason))
		if s.alert != nil {
			s.alert.postBody(ctx, s.log, n, n.ID, s.now, []any{"alert_type", n.Type, "partner", n.Partner})
		}
	}
}
