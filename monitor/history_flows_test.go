package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// storyFixture is one escrow, esc-story-1, whose release flow failed at
// its capture (a permanent failure, dead-lettered by the real worker):
// its e-mail and webhook blocked, its audit and on-failure audit run; and
// one more job of the escrow that belongs to no flow.
type storyFixture struct {
	*fixture
	flow  *flows.Flow
	other string // the job of no flow
}

func setupStory(t *testing.T) *storyFixture {
	t.Helper()
	opt, err := asynq.ParseRedisURI(peertest.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := tasks.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	f := escrowtest.ReleaseFlow(t, "esc-story-1")
	capture := f.JobIDs()["capture"]
	ad := escrowtest.NewAdapters()
	ad.FailWith(func(id string, _ int) error {
		if id == capture {
			return fmt.Errorf("stripe: capture: card declined: %w", asynq.SkipRetry)
		}
		return nil
	})
	dl := escrowtest.StartWorker(t, escrowtest.WorkerConfig{Redis: opt, Adapters: ad, Enqueuer: client})
	s := &storyFixture{fixture: setupOn(t, opt, func(c *monitor.Config) { c.DeadLetters = dl }), flow: f}
	if _, err := flows.Start(context.Background(), client, f); err != nil {
		t.Fatal(err)
	}
	s.other = s.enqueue(t, "esc-story-1")
	store := flows.NewStore(client.Redis(), s.inspector)
	want := map[string]string{"capture": flows.StepFailed, "seller-email": flows.StepBlocked, "partner-webhook": flows.StepBlocked,
		"audit": flows.StepCompleted, "failure-audit": flows.StepCompleted}
	escrowtest.Eventually(t, "the release flow failed and its steps settled", 20*time.Second, func() bool {
		v, err := store.Status(context.Background(), f.ID())
		if err != nil || v.State != flows.StateFailed {
			return false
		}
		for _, st := range v.Steps {
			if st.State != want[st.Name] {
				return false
			}
		}
		return true
	})
	s.waitState(t, s.other, "completed")
	return s
}

func TestHistoryShowsEachJobsFlowAndStep(t *testing.T) {
	s := setupStory(t)
	a := s.api(t, "GET", "/api/v1/transactions/esc-story-1/jobs", "")
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200: %s", a.status, a.body)
	}
	var h flows.History
	a.json(t, &h)
	if got, want := h.TransactionID, "esc-story-1"; got != want {
		t.Errorf("transactionId: got %q, want %q", got, want)
	}
	wantStep := map[string]string{s.other: ""} // job ID → step ("" for no flow)
	for step, id := range s.flow.JobIDs() {
		if step != "seller-email" && step != "partner-webhook" { // blocked: never enqueued
			wantStep[id] = step
		}
	}
	got := map[string]string{}
	for _, j := range h.Jobs {
		got[j.ID] = j.Step
		wantFlow := s.flow.ID()
		if j.ID == s.other {
			wantFlow = ""
		}
		if j.Flow != wantFlow {
			t.Errorf("job %s: got flow %q, want %q", j.ID, j.Flow, wantFlow)
		}
	}
	if len(got) != len(wantStep) {
		t.Errorf("got jobs %v, want %v", got, wantStep)
	}
	for id, step := range wantStep {
		if g, ok := got[id]; !ok || g != step {
			t.Errorf("job %s: got step %q (listed %v), want %q", id, g, ok, step)
		}
	}
	if len(h.Flows) != 1 || h.Flows[0].ID != s.flow.ID() || h.Flows[0].State != flows.StateFailed || len(h.Flows[0].Steps) != 5 {
		t.Errorf("got flows %+v, want release:esc-story-1 failed with its 5 steps", h.Flows)
	}
	// The JSON: flow and step on a flow's job, neither on another job.
	var raw struct {
		Jobs  []map[string]any `json:"jobs"`
		Flows []map[string]any `json:"flows"`
	}
	a.json(t, &raw)
	for _, j := range raw.Jobs {
		_, hasFlow := j["flow"]
		_, hasStep := j["step"]
		if want := j["id"] != s.other; hasFlow != want || hasStep != want {
			t.Errorf("job %v: got flow %v and step %v, want both %v", j["id"], hasFlow, hasStep, want)
		}
	}
	for _, k := range []string{"id", "name", "key", "state", "createdAt", "updatedAt", "steps"} {
		if _, ok := raw.Flows[0][k]; !ok {
			t.Errorf("flow JSON %v: no %q", raw.Flows[0], k)
		}
	}
}

// A flow outlives the escrow's job index (flows are kept for the
// dead-letter retention, the index for tasks.HistoryTTL): it is found by
// its name and the transaction ID, and the dead letter still names its
// flow and step.
func TestHistoryFindsTheEscrowsFlowsByName(t *testing.T) {
	s := setupStory(t)
	rc := s.client.Redis()
	if err := rc.Del(context.Background(), "escrowjobs:ix:esc-story-1", "escrowjobs:index:esc-story-1", "escrowjobs:jobs:esc-story-1", "escrowjobs:history:esc-story-1").Err(); err != nil {
		t.Fatal(err)
	}
	capture := s.flow.JobIDs()["capture"]
	// Only the ledger keeps the dead letter: no headers to read.
	if err := s.inspector.Asynq().DeleteTask(payloads.QueueOf(payloads.StripeCapturePayment{}), capture); err != nil {
		t.Fatal(err)
	}
	var h flows.History
	a := s.api(t, "GET", "/api/v1/transactions/esc-story-1/jobs", "")
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200: %s", a.status, a.body)
	}
	a.json(t, &h)
	if len(h.Flows) != 1 || h.Flows[0].ID != s.flow.ID() {
		t.Fatalf("got flows %+v, want %s found by its name", h.Flows, s.flow.ID())
	}
	found := false
	for _, j := range h.Jobs {
		if j.ID == capture {
			found = true
			if j.Flow != s.flow.ID() || j.Step != "capture" || j.DeadLetter == nil {
				t.Errorf("capture: got flow %q step %q dead letter %v, want %s capture with its dead letter", j.Flow, j.Step, j.DeadLetter, s.flow.ID())
			}
		}
	}
	if !found {
		b, _ := json.Marshal(h.Jobs)
		t.Errorf("got jobs %s, want the capture's dead letter", b)
	}
}
