package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
)

// failedSteps records what the worker tells Config.Flows.
type failedSteps struct {
	mu    sync.Mutex
	calls []string // "<flow> <step> <reason>"
}

func (f *failedSteps) Failed(_ context.Context, flowID, step, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, flowID+" "+step+" "+reason)
	return nil
}

func (f *failedSteps) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func flowTask(typ, id, flowID, step string) *asynq.Task {
	return asynq.NewTaskWithHeaders(typ, []byte(`{}`), map[string]string{flows.HeaderFlow: flowID, flows.HeaderStep: step},
		asynq.TaskID(id), asynq.MaxRetry(0))
}

// A dead-lettered job of a flow (a permanent failure in the handler, and
// one archived by asynq's recoverer that the sweep finds) is recorded with
// its flow and step, and Config.Flows is told; a job of no flow is not
// reported to it.
func TestDeadLetteredFlowStepIsReportedWithItsFlowAndStep(t *testing.T) {
	opt := redisOpt(t, peertest.Redis(t))
	dl := deadLetters(t)
	fs := &failedSteps{}
	w := start(t, newWorker(t, Config{Redis: opt, DeadLetters: dl, Flows: fs, Concurrency: 2, FetchLoops: 1},
		asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			return fmt.Errorf("card_declined: %w", asynq.SkipRetry)
		})))
	c := asynq.NewClient(opt)
	defer c.Close()
	for _, task := range []*asynq.Task{
		flowTask("stripe_capture_payment", "capture-1", "release:esc-1", "capture"),
		asynq.NewTask("audit_log_created", []byte(`{}`), asynq.TaskID("audit-1"), asynq.MaxRetry(0)),
	} {
		if _, err := c.Enqueue(task, asynq.Queue("critical")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two dead letters", func() bool { return len(ledgerIDs(t, dl)) == 2 })
	w.Shutdown()
	if got := fs.got(); len(got) != 1 || got[0] != "release:esc-1 capture card_declined: skip retry for the task" {
		t.Errorf("Flows.Failed: got %q, want one call for release:esc-1 capture", got)
	}
	e, err := dl.Get(context.Background(), "capture-1")
	if err != nil || e.Flow != "release:esc-1" || e.Step != "capture" {
		t.Errorf("dead letter: got flow %q step %q (%v)", e.Flow, e.Step, err)
	}
	if e, _ := dl.Get(context.Background(), "audit-1"); e.Flow != "" || e.Step != "" {
		t.Errorf("dead letter of no flow: got flow %q step %q", e.Flow, e.Step)
	}

	// asynq's recoverer archives a step whose worker died: the sweep
	// records it with its flow and step and tells the flow.
	archiveAsCrashed(t, opt, "default", flowTask("send_release_email", "mail-1", "release:esc-2", "seller-email"))
	s := newWorker(t, Config{Redis: opt, DeadLetters: dl, Flows: fs}, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	t.Cleanup(func() { s.rc.Close() })
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	s.sweep(context.Background(), insp)
	e, err = dl.Get(context.Background(), "mail-1")
	if err != nil || e.Flow != "release:esc-2" || e.Step != "seller-email" {
		t.Errorf("swept dead letter: got flow %q step %q (%v)", e.Flow, e.Step, err)
	}
	// (The capture is told again: the sweep cannot know the error
	// handler told it; Failed is idempotent.)
	got := fs.got()
	if !slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "release:esc-2 seller-email ") }) {
		t.Errorf("Flows.Failed after the sweep: got %q, want a call for release:esc-2 seller-email", got)
	}
}
