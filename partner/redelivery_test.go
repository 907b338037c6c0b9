package partner

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// requeues is a DeadLetters that records the requeues asked of it.
type requeues struct {
	mu  sync.Mutex
	ids []string
}

func (q *requeues) ListOpen(context.Context, string, string) ([]DeadLetter, error) { return nil, nil }

func (q *requeues) Requeue(_ context.Context, id, _, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ids = append(q.ids, id)
	return nil
}

func (q *requeues) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ids)
}

// A process that dies between claiming a due redelivery and requeueing it
// loses nothing: the entry stays in the due set under a lease, no other
// process takes it while the lease holds, and once it ends the next
// RunDue requeues it, once, and removes it.
func TestRedeliveryClaimSurvivesACrashBeforeTheRequeue(t *testing.T) {
	ctx := context.Background()
	rc := peertest.RedisClient(t, peertest.Redis(t))
	st, err := NewState(StateConfig{Redis: rc})
	if err != nil {
		t.Fatal(err)
	}
	dl := &requeues{}
	r, err := NewRedelivery(RedeliveryConfig{Redis: rc, DeadLetters: dl, State: st, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const lease = 300 * time.Millisecond
	r.lease = lease
	if err := r.schedule(ctx, time.Now().Add(-time.Second), dueEntry{ID: "webhook_escrow_status_changed:w1", Partner: "acme", Reason: "redelivery step 1 of 7 (5m0s)"}); err != nil {
		t.Fatal(err)
	}

	r.afterClaim = func() error { return errors.New("killed") }
	if got := r.RunDue(ctx); got != 0 || dl.count() != 0 {
		t.Fatalf("crashed RunDue: got %d requeued, %d requeues asked; want 0, 0", got, dl.count())
	}
	if n := rc.ZCard(ctx, dueKey).Val(); n != 1 {
		t.Fatalf("due set after the crash: got %d entries, want 1 (the claimed step)", n)
	}
	r.afterClaim = nil

	steps := []struct {
		name         string
		wait         time.Duration
		wantRequeued int
		wantDue      int64
	}{
		{"while the lease holds", 0, 0, 1},
		{"after the lease", lease + 100*time.Millisecond, 1, 0},
		{"again", 0, 0, 0},
	}
	total := 0
	for _, s := range steps {
		time.Sleep(s.wait)
		got := r.RunDue(ctx)
		total += got
		if got != s.wantRequeued {
			t.Errorf("%s: got %d requeued, want %d", s.name, got, s.wantRequeued)
		}
		if n := rc.ZCard(ctx, dueKey).Val(); n != s.wantDue {
			t.Errorf("%s: got %d due entries, want %d", s.name, n, s.wantDue)
		}
	}
	if dl.count() != 1 || total != 1 {
		t.Errorf("got %d requeues asked (%d reported), want 1", dl.count(), total)
	}
}
