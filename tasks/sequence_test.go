package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func statusEvent(t *testing.T, eventID, txID string, seq int64) *tasks.Task {
	t.Helper()
	task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
		EventID: eventID, PartnerID: "acme", TransactionID: txID, PreviousStatus: payloads.StatusPending,
		Status: payloads.StatusFunded, OccurredAt: "2026-12-03T12:00:00Z", Sequence: seq,
	})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// storedSequence is the sequence in the payload Redis holds for job id.
func storedSequence(t *testing.T, in *tasks.Inspector, id string) int64 {
	t.Helper()
	j, err := in.Status(context.Background(), id)
	if err != nil {
		t.Fatalf("job %s: %v", id, err)
	}
	var p payloads.WebhookEscrowStatusChanged
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		t.Fatalf("job %s: payload %s: %v", id, j.Payload, err)
	}
	return p.Sequence
}

// sequenceEnv is a private Redis: a client on it, its connection options
// and a Client, closed at cleanup.
func sequenceEnv(t *testing.T) (*redis.Client, asynq.RedisConnOpt, *tasks.Client) {
	t.Helper()
	u := peertest.Redis(t)
	opt, err := asynq.ParseRedisURI(u)
	if err != nil {
		t.Fatal(err)
	}
	c := tasks.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return peertest.RedisClient(t, u), opt, c
}

// warmSequenceEnv is sequenceEnv's client, an inspector on its Redis, and
// one partner event enqueued (Redis has loaded the enqueue script).
func warmSequenceEnv(t *testing.T) (*tasks.Client, *tasks.Inspector) {
	t.Helper()
	_, opt, c := sequenceEnv(t)
	in := tasks.NewInspector(opt)
	t.Cleanup(func() { in.Close() })
	if _, err := c.Enqueue(context.Background(), statusEvent(t, "evt-warm", "esc-warm", 0)); err != nil {
		t.Fatal(err)
	}
	return c, in
}

// Enqueue numbers each escrow's partner events in the order they are
// enqueued, one counter per escrow, whether built by New or rebuilt from
// storage (Stored, as the outbox relay and flows do); a duplicate keeps the
// number of the job Redis holds and takes none (on one Redis the number is
// taken by the script that stores the job), and a given sequence is kept.
func TestEnqueueNumbersEachEscrowsEventsInOrder(t *testing.T) {
	ctx := context.Background()
	rc, opt, c := sequenceEnv(t)
	in := tasks.NewInspector(opt)
	t.Cleanup(func() { in.Close() })

	stored := func(task *tasks.Task) *tasks.Task {
		return tasks.Stored(asynq.NewTask(task.Type(), task.Payload(), task.Options()...), task.ID, task.Queue, task.Options()...)
	}
	for _, step := range []struct {
		name    string
		task    *tasks.Task
		wantDup bool
		want    int64
	}{
		{"first event of esc-a", statusEvent(t, "evt-a1", "esc-a", 0), false, 1},
		{"first event of esc-b", statusEvent(t, "evt-b1", "esc-b", 0), false, 1},
		{"second event of esc-a", statusEvent(t, "evt-a2", "esc-a", 0), false, 2},
		{"the first again (a duplicate)", statusEvent(t, "evt-a1", "esc-a", 0), true, 1},
		{"third event of esc-a, from storage", stored(statusEvent(t, "evt-a3", "esc-a", 0)), false, 3},
		{"an event with its sequence", statusEvent(t, "evt-b9", "esc-b", 42), false, 42},
		{"second event of esc-b", statusEvent(t, "evt-b2", "esc-b", 0), false, 2},
	} {
		id, err := c.Enqueue(ctx, step.task)
		if gotDup := errors.Is(err, tasks.ErrDuplicate); gotDup != step.wantDup || (err != nil && !gotDup) {
			t.Fatalf("%s: got %v, want duplicate %v", step.name, err, step.wantDup)
		}
		if got := storedSequence(t, in, id); got != step.want {
			t.Errorf("%s: got sequence %d, want %d", step.name, got, step.want)
		}
	}
	ttl, err := rc.PTTL(ctx, "escrowjobs:seq:{esc-a}").Result()
	if err != nil || ttl < tasks.SequenceTTL-time.Minute {
		t.Errorf("counter's expiry: got %v (%v), want about %v", ttl, err, tasks.SequenceTTL)
	}
}

// Only partner events touch the counters: other jobs of an escrow cost
// nothing more.
func TestEnqueueNumbersOnlyPartnerEvents(t *testing.T) {
	ctx := context.Background()
	rc, _, c := sequenceEnv(t)
	task, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-c", PaymentIntentID: "pi_123"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, task); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Exists(ctx, "escrowjobs:seq:{esc-c}").Result(); err != nil || n != 0 {
		t.Errorf("counter of esc-c after a capture: got %d keys (%v), want none", n, err)
	}
}

// A negative sequence is refused when the job is built.
func TestNegativeSequenceIsRefused(t *testing.T) {
	_, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
		EventID: "evt-n", PartnerID: "acme", TransactionID: "esc-n", PreviousStatus: payloads.StatusPending,
		Status: payloads.StatusFunded, OccurredAt: "2026-12-03T12:00:00Z", Sequence: -1,
	})
	var ve *payloads.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a *payloads.ValidationError", err)
	}
}

// Enqueue registers each partner event in its escrow and partner's order
// set (score the sequence) in the script that numbers it; a duplicate
// writes nothing, and an event with its sequence is registered with it.
func TestEnqueueRegistersEventsInTheirEscrowsOrder(t *testing.T) {
	ctx := context.Background()
	rc, _, c := sequenceEnv(t)
	var ids []string
	for _, task := range []*tasks.Task{statusEvent(t, "evt-o1", "esc-o", 0), statusEvent(t, "evt-o2", "esc-o", 0), statusEvent(t, "evt-o9", "esc-o", 9)} {
		id, err := c.Enqueue(ctx, task)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := c.Enqueue(ctx, statusEvent(t, "evt-o1", "esc-o", 0)); !errors.Is(err, tasks.ErrDuplicate) {
		t.Fatalf("duplicate: got %v, want ErrDuplicate", err)
	}
	got, err := rc.ZRangeWithScores(ctx, "escrowjobs:seq:{esc-o}:acme", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := []redis.Z{{Score: 1, Member: ids[0]}, {Score: 2, Member: ids[1]}, {Score: 9, Member: ids[2]}}
	if len(got) != len(want) {
		t.Fatalf("order set: got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("order set entry %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if ttl, err := rc.PTTL(ctx, "escrowjobs:seq:{esc-o}:acme").Result(); err != nil || ttl < tasks.SequenceTTL-time.Minute {
		t.Errorf("order set's expiry: got %v (%v), want about %v", ttl, err, tasks.SequenceTTL)
	}
}

// commandCounter counts the commands and pipelines a client sends.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// On one Redis a partner event is one round trip, like any job: the
// enqueue script takes its sequence and registers it.
func TestPartnerEventIsOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, in := warmSequenceEnv(t)
	counter := &commandCounter{}
	c.Redis().AddHook(counter)
	task := statusEvent(t, "evt-rt", "esc-warm", 0) // its escrow's second event
	if _, err := c.Enqueue(ctx, task); err != nil {
		t.Fatal(err)
	}
	if got := counter.n.Load(); got != 1 {
		t.Errorf("got %d round trips, want 1", got)
	}
	if got := storedSequence(t, in, task.ID); got != 2 {
		t.Errorf("got sequence %d, want 2", got)
	}
}
