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

// The history index's write path: the job's field goes in the enqueue's
// pipeline, ahead of the job; it is written on its own when that pipeline
// did not carry it; a failed write is reported; a duplicate changes
// nothing; History lists no job of another escrow and still reads the
// formats the index used to have.

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

// The history line costs no round trip of its own, nor a command: on one
// Redis the job, its line and the wake-up are one script (enqueueScript),
// and nothing else is sent.
func TestEnqueueSendsTheHistoryLineWithTheJobInOneCommand(t *testing.T) {
	_, _, in, c := indexRedis(t)
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, captureTask(t, "esc-warm", "pi_warm")); err != nil { // the script is loaded
		t.Fatal(err)
	}
	rec := &commandRecorder{}
	c.rc.AddHook(rec) // inside the wake publisher: sees what reaches Redis
	task := captureTask(t, "esc-one-trip", "pi_onetrip")
	if _, err := c.Enqueue(ctx, task); err != nil {
		t.Fatal(err)
	}
	if want := []string{"evalsha"}; !slices.Equal(rec.single, want) || len(rec.pipelines) > 0 {
		t.Errorf("sent: got alone %q and pipelines %q, want alone %q and no pipeline", rec.single, rec.pipelines, want)
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
	if err := rc.HSet(ctx, historyKey(tx), "x", "y").Err(); err != nil { // GET there fails: WRONGTYPE
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

// A job in the hash, the lines or the hash the index used to be is
// listed too; a job of both the lines and the index is listed once, from
// the index; the index has one line per job and outlives its latest new
// job by HistoryTTL plus that job's delay.
func TestHistoryReadsTheFormatsBeforeTheIndex(t *testing.T) {
	_, rc, in, c := indexRedis(t)
	ctx := context.Background()
	const tx = "esc-lines"
	legacy := "stripe_capture_payment:capture-pi_legacy"
	if err := rc.HSet(ctx, legacyHistoryKey(tx), legacy, "critical 1764460800000000000").Err(); err != nil {
		t.Fatal(err)
	}
	hashed := "stripe_capture_payment:capture-pi_hashed"
	if err := rc.HSet(ctx, hashHistoryKey(tx), hashed, "critical 1764460850000000000").Err(); err != nil {
		t.Fatal(err)
	}
	lined := "stripe_capture_payment:capture-pi_lined"
	twice := captureTask(t, tx, "pi_twice")
	lines := "1764460900000000000 critical " + lined + "\n1764461000000000000 critical " + twice.ID + "\n"
	if err := rc.Set(ctx, linesHistoryKey(tx), lines, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	between := time.Now()
	if _, err := c.Enqueue(ctx, twice); err != nil {
		t.Fatal(err)
	}
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
	if got := rc.Get(ctx, historyKey(tx)).Val(); strings.Count(got, "\n") != 2 || strings.Count(got, twice.ID+" ") != 1 {
		t.Errorf("index: got %q, want 2 lines (one per job)", got)
	}
	jobs := wantHistory(t, in, tx, []string{legacy, hashed, lined, twice.ID, later.ID}, []string{StateExpired, StateExpired, StateExpired, "pending", "scheduled"})
	if want := time.Unix(0, 1764460800000000000).UTC(); jobs[0].EnqueuedAt == nil || !jobs[0].EnqueuedAt.Equal(want) || jobs[0].Queue != "critical" {
		t.Errorf("legacy job: got enqueued at %v in %q, want %s in critical", jobs[0].EnqueuedAt, jobs[0].Queue, want)
	}
	if want := time.Unix(0, 1764460850000000000).UTC(); jobs[1].EnqueuedAt == nil || !jobs[1].EnqueuedAt.Equal(want) || jobs[1].Queue != "critical" {
		t.Errorf("job of the hash: got enqueued at %v in %q, want %s in critical", jobs[1].EnqueuedAt, jobs[1].Queue, want)
	}
	if want := time.Unix(0, 1764460900000000000).UTC(); jobs[2].EnqueuedAt == nil || !jobs[2].EnqueuedAt.Equal(want) {
		t.Errorf("job of the lines: got enqueued at %v, want %s", jobs[2].EnqueuedAt, want)
	}
	if jobs[3].EnqueuedAt == nil || jobs[3].EnqueuedAt.Before(between) || jobs[3].Queue != "critical" {
		t.Errorf("job of the lines and the index: got enqueued at %v in %q, want its enqueue into the index (after %s) in critical", jobs[3].EnqueuedAt, jobs[3].Queue, between)
	}
}

// However often a job is enqueued again while it exists, the escrow's
// index keeps the size and the expiry it had after the first enqueue.
func TestDuplicatesLeaveTheIndexAsTheFirstEnqueueDid(t *testing.T) {
	_, rc, in, c := indexRedis(t)
	ctx := context.Background()
	const tx = "esc-dups"
	task := captureTask(t, tx, "pi_dups")
	if _, err := c.Enqueue(ctx, task); err != nil {
		t.Fatal(err)
	}
	key := historyKey(tx)
	size, ttl := rc.MemoryUsage(ctx, key).Val(), rc.PTTL(ctx, key).Val()
	lines := rc.Get(ctx, key).Val()
	for i := range 300 {
		if _, err := c.Enqueue(ctx, captureTask(t, tx, "pi_dups")); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("duplicate %d: got %v, want ErrDuplicate", i, err)
		}
	}
	if got := rc.MemoryUsage(ctx, key).Val(); got != size {
		t.Errorf("index size after 300 duplicates: got %d bytes, want %d (as after the first enqueue)", got, size)
	}
	if got := rc.PTTL(ctx, key).Val(); got > ttl {
		t.Errorf("index expiry after 300 duplicates: got %s, want at most %s (not pushed out)", got, ttl)
	}
	if got := rc.Get(ctx, key).Val(); got != lines {
		t.Errorf("index after 300 duplicates: got %q, want %q", got, lines)
	}
	wantHistory(t, in, tx, []string{task.ID}, []string{"pending"})
}

// A dedupe key used by two escrows names one job, the first escrow's: the
// second escrow's refused enqueue leaves nothing in its index, and an
// index entry naming a job of another escrow (written before) is not
// listed, and taken out.
func TestHistoryListsNoJobOfAnotherEscrow(t *testing.T) {
	_, rc, in, c := indexRedis(t)
	ctx := context.Background()
	first := captureTask(t, "esc-1", "pi_shared", DedupeKey("shared-capture"))
	if _, err := c.Enqueue(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := captureTask(t, "esc-4", "pi_other", DedupeKey("shared-capture"))
	if id, err := c.Enqueue(ctx, second); !errors.Is(err, ErrDuplicate) || id != first.ID {
		t.Fatalf("enqueue for esc-4: got (%q, %v), want (%q, ErrDuplicate)", id, err, first.ID)
	}
	if n := rc.Exists(ctx, historyKey("esc-4")).Val(); n != 0 {
		t.Errorf("index of esc-4: got %q, want none", rc.HGetAll(ctx, historyKey("esc-4")).Val())
	}
	wantHistory(t, in, "esc-4", nil, nil)
	wantHistory(t, in, "esc-1", []string{first.ID}, []string{"pending"})

	// Entries written before (by an enqueue without the check above), in
	// the index and in the hash it used to be.
	for _, tc := range []struct {
		name  string
		write func() error
	}{
		{"index", func() error {
			return rc.Set(ctx, historyKey("esc-4"), first.ID+" "+indexValue(first.ID, first.Queue, time.Now())+"\n", time.Hour).Err()
		}},
		{"hash", func() error {
			return rc.HSet(ctx, hashHistoryKey("esc-4"), first.ID, first.Queue+" 1764460800000000000").Err()
		}},
	} {
		if err := tc.write(); err != nil {
			t.Fatal(err)
		}
		wantHistory(t, in, "esc-4", nil, nil)
		if n := rc.Exists(ctx, historyKey("esc-4"), hashHistoryKey("esc-4")).Val(); n != 0 {
			t.Errorf("%s of esc-4 after History: got %d keys, want none (the entry taken out)", tc.name, n)
		}
		wantHistory(t, in, "esc-1", []string{first.ID}, []string{"pending"})
	}
}

// A job stored again under an ID the index still names (asynq dropped
// the earlier job) is listed at its new enqueue.
func TestHistoryListsAJobStoredAgainAtItsNewEnqueue(t *testing.T) {
	_, rc, in, c := indexRedis(t)
	ctx := context.Background()
	const tx = "esc-again"
	task := captureTask(t, tx, "pi_again")
	if err := rc.Set(ctx, historyKey(tx), task.ID+" "+indexValue(task.ID, task.Queue, time.Unix(0, 1764460800000000000))+"\n", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if _, err := c.Enqueue(ctx, task); err != nil {
		t.Fatal(err)
	}
	jobs := wantHistory(t, in, tx, []string{task.ID}, []string{"pending"})
	if jobs[0].EnqueuedAt == nil || jobs[0].EnqueuedAt.Before(before) {
		t.Errorf("enqueued at: got %v, want after %s", jobs[0].EnqueuedAt, before)
	}
	if ttl := rc.PTTL(ctx, historyKey(tx)).Val(); ttl < HistoryTTL-time.Minute {
		t.Errorf("index expiry: got %s, want about HistoryTTL", ttl)
	}
	if got := rc.Get(ctx, historyKey(tx)).Val(); strings.Count(got, "\n") != 1 {
		t.Errorf("index: got %q, want the job's one line", got)
	}
}
