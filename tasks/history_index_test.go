package tasks

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// The history index's write path: the line goes in the enqueue's pipeline,
// ahead of the job; it is written on its own when that pipeline did not
// carry it; a failed write is reported; History keeps each job's latest
// line and still reads the hash the index used to be.

// indexRedis is a private Redis as an asynq option, a plain client on it,
// an Inspector and a Client.
func indexRedis(t *testing.T) (asynq.RedisConnOpt, *redis.Client, *Inspector, *Client) {
	t.Helper()
	u := peertest.Redis(t)
	opt, err := asynq.ParseRedisURI(u)
	if err != nil {
		t.Fatal(err)
	}
	rc, in, c := peertest.RedisClient(t, u), NewInspector(opt), NewClient(opt)
	t.Cleanup(func() { in.Close(); c.Close() })
	return opt, rc, in, c
}

func captureTask(t *testing.T, txID, pi string, opts ...Option) *Task {
	t.Helper()
	task, err := NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: txID, PaymentIntentID: pi}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// wantHistory checks the IDs and states History lists for txID, in its
// order, and returns the jobs.
func wantHistory(t *testing.T, in *Inspector, txID string, wantIDs, wantStates []string) []HistoryJob {
	t.Helper()
	jobs, err := in.History(context.Background(), txID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids, states []string
	for _, j := range jobs {
		ids, states = append(ids, j.ID), append(states, j.State)
	}
	if !slices.Equal(ids, wantIDs) || !slices.Equal(states, wantStates) {
		t.Fatalf("history of %s: got %q %q, want %q %q", txID, ids, states, wantIDs, wantStates)
	}
	return jobs
}

// commandRecorder is a go-redis hook that notes the commands sent alone
// and the pipelines sent.
type commandRecorder struct {
	mu        sync.Mutex
	single    []string
	pipelines [][]string
}

func (r *commandRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *commandRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.mu.Lock()
		r.single = append(r.single, cmd.Name())
		r.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (r *commandRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var names []string
		for _, c := range cmds {
			names = append(names, c.Name())
		}
		r.mu.Lock()
		r.pipelines = append(r.pipelines, names)
		r.mu.Unlock()
		return next(ctx, cmds)
	}
}

// The history line costs no round trip of its own: APPEND and PEXPIRE go
// in the pipeline of asynq's enqueue script and the wake-up, ahead of the
// script, and nothing else is sent.
func TestEnqueueSendsTheHistoryLineAheadOfTheJobInOneRoundTrip(t *testing.T) {
	_, _, in, c := indexRedis(t)
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, captureTask(t, "esc-warm", "pi_warm")); err != nil { // asynq's script is loaded
		t.Fatal(err)
	}
	rec := &commandRecorder{}
	c.rc.AddHook(rec) // inside the wake publisher: sees what reaches Redis
	task := captureTask(t, "esc-one-trip", "pi_onetrip")
	if _, err := c.Enqueue(ctx, task); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"append", "pexpire", "evalsha", "publish"}}
	if len(rec.single) > 0 || !slices.EqualFunc(rec.pipelines, want, slices.Equal) {
		t.Errorf("sent: got alone %q and pipelines %q, want no command alone and pipelines %q", rec.single, rec.pipelines, want)
	}
	wantHistory(t, in, "esc-one-trip", []string{task.ID}, []string{"pending"})
}

// A Client whose enqueue script the pipeline hook does not recognise (here
// it has no hook at all, as with a future asynq that enqueues differently)
// still indexes every job: the line is written on its own after the job.
func TestEnqueueWritesTheHistoryLineItsPipelineDidNotCarry(t *testing.T) {
	opt, _, in, _ := indexRedis(t)
	rc := opt.MakeRedisClient().(redis.UniversalClient)
	c := &Client{rc: rc, c: asynq.NewClientFromRedisClient(rc), timeout: EnqueueTimeout}
	defer c.Close()
	task := captureTask(t, "esc-no-hook", "pi_nohook")
	if _, err := c.Enqueue(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	wantHistory(t, in, "esc-no-hook", []string{task.ID}, []string{"pending"})
}

// A job stored whose history line could not be written is reported with
// its ID and an error (not ErrDuplicate); the retry the caller makes
// writes the line and reports ErrDuplicate.
func TestEnqueueReportsAJobStoredWithoutItsHistoryLine(t *testing.T) {
	_, rc, in, c := indexRedis(t)
	ctx := context.Background()
	const tx = "esc-wrong-type"
	if err := rc.HSet(ctx, historyKey(tx), "x", "y").Err(); err != nil { // APPEND there fails: WRONGTYPE
		t.Fatal(err)
	}
	task := captureTask(t, tx, "pi_wrongtype")
	id, err := c.Enqueue(ctx, task)
	if err == nil || errors.Is(err, ErrDuplicate) || id != task.ID || !strings.Contains(err.Error(), "not in the escrow's history") {
		t.Fatalf("enqueue: got (%q, %v), want the job's ID and an error naming the history", id, err)
	}
	if info, err := in.Asynq().GetTaskInfo(task.Queue, task.ID); err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("job: got %v, %v; want it stored, pending", info, err)
	}
	if err := rc.Del(ctx, historyKey(tx)).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, task); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("retry: got %v, want ErrDuplicate", err)
	}
	wantHistory(t, in, tx, []string{task.ID}, []string{"pending"})
}

// A job enqueued twice is listed once, at its latest enqueue; a job only
// in the hash the index used to be is listed too; the index outlives its
// latest enqueue by HistoryTTL plus that job's delay.
func TestHistoryKeepsTheLatestLineOfAJobAndReadsTheLegacyHash(t *testing.T) {
	_, rc, in, c := indexRedis(t)
	ctx := context.Background()
	const tx = "esc-lines"
	legacy := "stripe_capture_payment:capture-pi_legacy"
	if err := rc.HSet(ctx, legacyHistoryKey(tx), legacy, "critical 1764460800000000000").Err(); err != nil {
		t.Fatal(err)
	}
	twice := captureTask(t, tx, "pi_twice")
	if _, err := c.Enqueue(ctx, twice); err != nil {
		t.Fatal(err)
	}
	between := time.Now()
	if _, err := c.Enqueue(ctx, twice); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second enqueue: got %v, want ErrDuplicate", err)
	}
	later := captureTask(t, tx, "pi_later", ProcessIn(time.Hour))
	if _, err := c.Enqueue(ctx, later); err != nil {
		t.Fatal(err)
	}
	if ttl := rc.PTTL(ctx, historyKey(tx)).Val(); ttl < HistoryTTL+time.Hour-time.Minute || ttl > HistoryTTL+time.Hour {
		t.Errorf("index expiry: got %s, want HistoryTTL + the 1 h delay", ttl)
	}
	if lines := strings.Count(rc.Get(ctx, historyKey(tx)).Val(), "\n"); lines != 3 {
		t.Errorf("index: got %d lines, want 3 (one per enqueue)", lines)
	}
	jobs := wantHistory(t, in, tx, []string{legacy, twice.ID, later.ID}, []string{StateExpired, "pending", "scheduled"})
	if want := time.Unix(0, 1764460800000000000).UTC(); jobs[0].EnqueuedAt == nil || !jobs[0].EnqueuedAt.Equal(want) || jobs[0].Queue != "critical" {
		t.Errorf("legacy job: got enqueued at %v in %q, want %s in critical", jobs[0].EnqueuedAt, jobs[0].Queue, want)
	}
	if jobs[1].EnqueuedAt == nil || jobs[1].EnqueuedAt.Before(between) {
		t.Errorf("job enqueued twice: got enqueued at %v, want its second enqueue (after %s)", jobs[1].EnqueuedAt, between)
	}
}
