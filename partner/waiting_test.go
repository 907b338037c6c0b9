package partner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// waitingSetup is a partner state on a private Redis whose only
// concurrency slot for acme is taken, so every admit waits.
func waitingSetup(t *testing.T, maxWaiting int) (context.Context, redis.UniversalClient, *State, func(job string)) {
	t.Helper()
	ctx := context.Background()
	rc := peertest.RedisClient(t, peertest.Redis(t))
	s, err := NewState(StateConfig{Redis: rc, MaxWaiting: maxWaiting})
	if err != nil {
		t.Fatal(err)
	}
	limits := Limits{MaxConcurrency: 1}
	if a, err := s.admit(ctx, "acme", "webhook_escrow_status_changed:busy", limits); err != nil || a.token == "" {
		t.Fatalf("admit busy: got %+v, %v; want the slot", a, err)
	}
	wait := func(job string) {
		t.Helper()
		a, err := s.admit(ctx, "acme", job, limits)
		if err != nil || a.wait == nil {
			t.Fatalf("admit %s: got %+v, %v; want a wait", job, a, err)
		}
	}
	return ctx, rc, s, wait
}

// The waiting set names only deliveries that wait: a dead-lettered job
// leaves it (whatever made it one), as does, when the circuit closes, a
// job asynq no longer holds or holds as completed or archived; the set
// expires after its latest wait.
func TestWaitingSetForgetsDeliveriesThatNoLongerWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"transient", errors.New("partner answered 503")},
		{"permanent", fmt.Errorf("partner answered 400: %w", asynq.SkipRetry)},
		{"unknown partner", fmt.Errorf("acme: %w: %w", ErrUnknownPartner, asynq.SkipRetry)},
		{"disabled", fmt.Errorf("acme: %w: %w", ErrEndpointDisabled, asynq.SkipRetry)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, rc, s, wait := waitingSetup(t, 0)
			const job = "webhook_escrow_status_changed:w-dead"
			wait(job)
			wait("webhook_escrow_status_changed:w-other")
			ttl := rc.PTTL(ctx, waitingKey("acme")).Val()
			if ttl <= 0 || ttl > time.Second+waitingGrace {
				t.Errorf("waiting set expiry: got %s, want one, at most the wait plus %s", ttl, waitingGrace)
			}
			r, err := NewRedelivery(RedeliveryConfig{Redis: rc, DeadLetters: &requeues{}, State: s})
			if err != nil {
				t.Fatal(err)
			}
			r.Archived(ctx, job, webhookType, []byte(`{"partnerId":"acme"}`), tc.err)
			if got := rc.ZRange(ctx, waitingKey("acme"), 0, -1).Val(); len(got) != 1 || got[0] != "webhook_escrow_status_changed:w-other" {
				t.Errorf("waiting after the dead letter: got %q, want only the other delivery", got)
			}
		})
	}

	t.Run("gone from asynq", func(t *testing.T) {
		ctx, rc, s, wait := waitingSetup(t, 0)
		wait("webhook_escrow_status_changed:w-gone")
		s.wake(ctx, "acme", slog.New(slog.DiscardHandler))
		if got := rc.ZCard(ctx, waitingKey("acme")).Val(); got != 0 {
			t.Errorf("waiting after the wake-up: got %d entries, want 0", got)
		}
	})
}

// The waiting set is bounded: entries whose wait ended more than
// waitingGrace ago are dropped, and beyond MaxWaiting those whose wait
// ends first.
func TestWaitingSetIsBounded(t *testing.T) {
	ctx, rc, _, wait := waitingSetup(t, 3)
	stale := float64(time.Now().Add(-waitingGrace - time.Minute).UnixMilli())
	if err := rc.ZAdd(ctx, waitingKey("acme"), redis.Z{Score: stale, Member: "webhook_escrow_status_changed:w-stale"}).Err(); err != nil {
		t.Fatal(err)
	}
	wait("webhook_escrow_status_changed:w-0")
	if _, err := rc.ZScore(ctx, waitingKey("acme"), "webhook_escrow_status_changed:w-stale").Result(); !errors.Is(err, redis.Nil) {
		t.Errorf("stale entry: got %v, want it gone", err)
	}
	for i := 1; i < 6; i++ {
		wait(fmt.Sprintf("webhook_escrow_status_changed:w-%d", i))
	}
	if got := rc.ZCard(ctx, waitingKey("acme")).Val(); got != 3 {
		t.Errorf("waiting set size: got %d, want 3 (MaxWaiting)", got)
	}
}
