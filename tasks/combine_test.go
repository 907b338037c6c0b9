package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
)

// holdFirst is a hook inside the Client's combining hook: it holds the
// first two scripts it sees alone (one for each round trip the Client
// keeps in flight) until release is closed, and counts the scripts that
// reach Redis in shared pipelines.
type holdFirst struct {
	held    atomic.Int64
	release chan struct{}
	pipes   atomic.Int64 // pipelines of more than one script
	piped   atomic.Int64 // scripts in them
}

func (h *holdFirst) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdFirst) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); (n == "evalsha" || n == "eval") && h.held.Add(1) <= 2 {
			<-h.release
		}
		return next(ctx, cmd)
	}
}

func (h *holdFirst) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		scripts := 0
		for _, c := range cmds {
			if n := c.Name(); n == "evalsha" || n == "eval" {
				scripts++
			}
		}
		if scripts > 1 {
			h.pipes.Add(1)
			h.piped.Add(int64(scripts))
		}
		return next(ctx, cmds)
	}
}

// Enqueues from many callers while a round trip is in flight share the
// next one, and each gets its own outcome: a new job stored with its
// history line and, for a partner event, its own sequence; a duplicate
// refused with ErrDuplicate.
func TestConcurrentEnqueuesShareRoundTripsWithTheirOwnAnswers(t *testing.T) {
	ctx := context.Background()
	c, in := warmSequenceEnv(t)
	h := &holdFirst{release: make(chan struct{})}
	c.Redis().AddHook(h)
	first := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := c.Enqueue(ctx, statusEvent(t, fmt.Sprintf("evt-first-%d", i), "esc-first", 0))
			first <- err
		}()
	}
	for deadline := time.Now().Add(20 * time.Second); h.held.Load() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the first two enqueues to be held")
		}
	}

	const escrows, events, emails = 4, 5, 8
	type outcome struct {
		id  string
		err error
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes []outcome
	)
	enqueue := func(task *tasks.Task) {
		wg.Go(func() {
			id, err := c.Enqueue(ctx, task)
			mu.Lock()
			outcomes = append(outcomes, outcome{id, err})
			mu.Unlock()
		})
	}
	for e := range escrows {
		for v := range events {
			enqueue(statusEvent(t, fmt.Sprintf("evt-%d-%d", e, v), fmt.Sprintf("esc-c%d", e), 0))
		}
	}
	for i := range emails {
		p := payloads.SendReleaseEmail{TransactionID: fmt.Sprintf("esc-m%d", i), RecipientEmail: "seller@example.com",
			Amount: 1000, Currency: "USD"}
		for range 2 { // the second of each is a duplicate
			task, err := tasks.NewSendReleaseEmailTask(p)
			if err != nil {
				t.Fatal(err)
			}
			enqueue(task)
		}
	}
	// Within the held enqueues' deadline (EnqueueTimeout).
	for deadline := time.Now().Add(time.Second); tasks.ScriptsWaiting(c) < 10; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("got %d scripts waiting after 1 s, want 10 or more", tasks.ScriptsWaiting(c))
		}
	}
	close(h.release)
	wg.Wait()
	for range 2 {
		if err := <-first; err != nil {
			t.Fatalf("held enqueue: got %v, want nil", err)
		}
	}
	if h.pipes.Load() == 0 {
		t.Fatal("got no shared pipeline of scripts, want the waiting enqueues in one")
	}
	var stored, dups int
	for _, o := range outcomes {
		switch {
		case o.err == nil:
			stored++
		case errors.Is(o.err, tasks.ErrDuplicate):
			dups++
		default:
			t.Errorf("enqueue %s: got %v, want nil or ErrDuplicate", o.id, o.err)
		}
	}
	if want := escrows*events + emails; stored != want || dups != emails {
		t.Errorf("got %d stored and %d duplicates, want %d and %d", stored, dups, want, emails)
	}
	for e := range escrows {
		var seqs []int64
		for v := range events {
			seqs = append(seqs, storedSequence(t, in, fmt.Sprintf("%s:event-evt-%d-%d", payloads.WebhookEscrowStatusChanged{}.TaskType(), e, v)))
		}
		slices.Sort(seqs)
		if want := []int64{1, 2, 3, 4, 5}; !slices.Equal(seqs, want) {
			t.Errorf("escrow esc-c%d: got sequences %v, want %v", e, seqs, want)
		}
		jobs, err := in.History(ctx, fmt.Sprintf("esc-c%d", e), nil)
		if err != nil || len(jobs) != events {
			t.Errorf("escrow esc-c%d: got %d jobs in its history (%v), want %d", e, len(jobs), err, events)
		}
	}
	for i := range emails {
		jobs, err := in.History(ctx, fmt.Sprintf("esc-m%d", i), nil)
		if err != nil || len(jobs) != 1 {
			t.Errorf("escrow esc-m%d: got %d jobs in its history (%v), want 1", i, len(jobs), err)
		}
	}
}
