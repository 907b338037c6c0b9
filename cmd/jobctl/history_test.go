package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// setupStory runs the real worker over escrow esc-story-2: its release
// flow fails at the capture (permanently, a dead letter in the worker's
// ledger, which jobctl reads), its e-mail and webhook blocked, its audit
// and on-failure audit run; one more job of the escrow belongs to no flow.
// The monitor's API over the same Redis and ledger is there to compare
// --json with.
func setupStory(t *testing.T) (f *flowFixture, flow *flows.Flow, other string) {
	t.Helper()
	f = &flowFixture{fixture: setup(t)}
	opt, err := asynq.ParseRedisURI(f.url)
	if err != nil {
		t.Fatal(err)
	}
	client, in := tasks.NewClient(opt), tasks.NewInspector(opt)
	t.Cleanup(func() { client.Close(); in.Close() })
	flow = escrowtest.ReleaseFlow(t, "esc-story-2")
	capture := flow.JobIDs()["capture"]
	ad := escrowtest.NewAdapters()
	ad.FailWith(func(id string, _ int) error {
		if id == capture {
			return fmt.Errorf("stripe: capture: card declined: %w", asynq.SkipRetry)
		}
		return nil
	})
	dl := escrowtest.StartWorker(t, escrowtest.WorkerConfig{Redis: opt, Adapters: ad, Enqueuer: client})
	f.env["DEAD_LETTER_PATH"] = dl.Path()
	ctx := context.Background()
	if _, err := flows.Start(ctx, client, flow); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: "esc-story-2", RecipientEmail: "buyer@example.com", Amount: 100, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if other, err = client.Enqueue(ctx, task); err != nil {
		t.Fatal(err)
	}
	store := flows.NewStore(client.Redis(), in)
	escrowtest.Eventually(t, "the release flow failed and its audits ran", 20*time.Second, func() bool {
		v, err := store.Status(ctx, flow.ID())
		if err != nil || v.State != flows.StateFailed {
			return false
		}
		for _, s := range v.Steps {
			if (s.Name == "audit" || s.Name == "failure-audit") && s.State != flows.StepCompleted {
				return false
			}
		}
		return true
	})
	escrowtest.AwaitState(t, in, other, "completed", 10*time.Second)
	m, err := monitor.New(monitor.Config{RedisOpt: opt, APIToken: flowTestToken, Username: "ops", Password: "correct horse battery",
		DeadLetters: dl, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() { srv.Close(); m.Close() })
	f.api = srv.URL
	return f, flow, other
}

func TestHistoryGroupsJobsUnderTheirFlow(t *testing.T) {
	f, flow, other := setupStory(t)
	ids := flow.JobIDs()
	r := f.run("history", "esc-story-2")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	// In this order: the flow's line, its steps in dependency order with
	// their jobs, then the job of no flow.
	wants := [][]string{
		{"flow release:esc-story-2: failed, 1 of 4 completed; failed step capture:", "card declined"},
		{"ENQUEUED", "STEP", "TYPE", "STATE", "ATTEMPTS", "ID", "LAST ERROR"},
		{"capture", "stripe_capture_payment", "archived (dead letter permanent", ids["capture"], "card declined"},
		{"seller-email", "send_release_email", "blocked (not enqueued)", ids["seller-email"]},
		{"partner-webhook", "webhook_escrow_status_changed", "blocked (not enqueued)", ids["partner-webhook"]},
		{"audit", "audit_log_created", "completed", ids["audit"]},
		{"failure-audit (on failure)", "audit_log_created", "completed", ids["failure-audit"]},
		{"jobs of no flow"},
		{"ENQUEUED", "TYPE", "STATE"},
		{"send_release_email", "completed", other},
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	i := 0
	for _, want := range wants {
		for i < len(lines) && !containsAll(lines[i], want) {
			i++
		}
		if i == len(lines) {
			t.Fatalf("got:\n%s\nwant a line with %q (after the lines before it)", r.stdout, want)
		}
		i++
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestHistoryJSONIsTheAPIs(t *testing.T) {
	f, flow, other := setupStory(t)
	r := f.run("--json", "history", "esc-story-2")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var got any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v: %s", err, r.stdout)
	}
	if want := f.get(t, "/api/v1/transactions/esc-story-2/jobs"); !reflect.DeepEqual(got, want) {
		t.Errorf("got %s\nwant (the API's) %v", r.stdout, want)
	}
	var h flows.History
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Flows) != 1 || h.Flows[0].ID != flow.ID() {
		t.Errorf("got flows %+v, want %s", h.Flows, flow.ID())
	}
	for _, j := range h.Jobs {
		if want := j.ID != other; (j.Flow == flow.ID() && j.Step != "") != want {
			t.Errorf("job %s: got flow %q step %q, want a step of %s: %v", j.ID, j.Flow, j.Step, flow.ID(), want)
		}
	}
}
