package flows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/hibiken/asynq"
)

func TestStepsRunInOrderAndTheFlowCompletes(t *testing.T) {
	e := setup(t, nil)
	e.startWorker(t, 8)
	f := build(t, release("esc-order"))
	id, err := flows.Start(context.Background(), e.client, f)
	if err != nil || id != "release:esc-order" {
		t.Fatalf("Start: got %q, %v", id, err)
	}
	v := e.awaitFlow(t, id, flows.StateCompleted)
	capture := e.adapters.Attempts(step(t, v, "capture").JobID)
	if len(capture) != 1 {
		t.Fatalf("capture: got %d calls, want 1", len(capture))
	}
	for _, name := range []string{"seller-email", "partner-webhook"} {
		at := e.adapters.Attempts(step(t, v, name).JobID)
		if len(at) != 1 {
			t.Fatalf("%s: got %d calls, want 1", name, len(at))
		}
		if !at[0].Start.After(capture[0].End) {
			t.Errorf("%s started at %v, before the capture ended at %v", name, at[0].Start, capture[0].End)
		}
	}
	if n := e.adapters.Calls(step(t, v, "audit").JobID); n != 1 {
		t.Errorf("audit: got %d calls, want 1", n)
	}
	if n := e.adapters.Calls(step(t, v, "failure-audit").JobID); n != 0 {
		t.Errorf("failure-audit of a flow that did not fail: got %d calls, want 0", n)
	}
	for _, s := range v.Steps {
		want := flows.StepCompleted
		if s.OnFailure {
			want = flows.StepCancelled
		}
		if s.State != want {
			t.Errorf("step %s: got state %s, want %s", s.Name, s.State, want)
		}
	}
}

func TestStatusShape(t *testing.T) {
	e := setup(t, nil)
	f := build(t, release("esc-shape"))
	if _, err := flows.Start(context.Background(), e.client, f); err != nil {
		t.Fatal(err)
	}
	v, err := e.store.Status(context.Background(), f.ID())
	if err != nil {
		t.Fatal(err)
	}
	if v.ID != "release:esc-shape" || v.Name != "release" || v.Key != "esc-shape" || v.State != flows.StateRunning ||
		v.CreatedAt.IsZero() || v.UpdatedAt.IsZero() {
		t.Errorf("view: got %+v", v)
	}
	want := map[string]string{"capture": flows.StepPending, "seller-email": flows.StepWaiting, "partner-webhook": flows.StepWaiting,
		"audit": flows.StepPending, "failure-audit": flows.StepWaiting}
	for _, s := range v.Steps {
		if s.State != want[s.Name] {
			t.Errorf("step %s: got %s, want %s", s.Name, s.State, want[s.Name])
		}
	}
	if s := step(t, v, "seller-email"); !slices.Equal(s.After, []string{"capture"}) || s.Type != "send_release_email" ||
		!strings.HasPrefix(s.JobID, "send_release_email:escrow-esc-shape-release-") {
		t.Errorf("seller-email: got %+v", s)
	}
	if s := step(t, v, "failure-audit"); !s.OnFailure {
		t.Errorf("failure-audit: got %+v, want onFailure", s)
	}
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"id", "name", "key", "state", "createdAt", "updatedAt", "steps"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON %s: no %q", b, k)
		}
	}
	st := m["steps"].([]any)[1].(map[string]any)
	for _, k := range []string{"name", "jobId", "type", "after", "onFailure", "state", "attempts"} {
		if _, ok := st[k]; !ok {
			t.Errorf("step JSON %v: no %q", st, k)
		}
	}
	if _, err := e.store.Status(context.Background(), "release:nope"); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("Status of no flow: got %v, want ErrNotFound", err)
	}
}

func TestFanOutAndFanIn(t *testing.T) {
	e := setup(t, nil)
	e.startWorker(t, 8)
	f := build(t, flows.New("fan", "esc-fan").
		Step("a", audit("evt-a")).
		Step("b", audit("evt-b"), flows.After("a")).
		Step("c", audit("evt-c"), flows.After("a")).
		Step("d", audit("evt-d"), flows.After("b", "c")))
	if _, err := flows.Start(context.Background(), e.client, f); err != nil {
		t.Fatal(err)
	}
	v := e.awaitFlow(t, f.ID(), flows.StateCompleted)
	at := map[string]time.Time{}
	end := map[string]time.Time{}
	for _, s := range v.Steps {
		a := e.adapters.Attempts(s.JobID)
		if len(a) != 1 {
			t.Fatalf("step %s: got %d calls, want 1", s.Name, len(a))
		}
		at[s.Name], end[s.Name] = a[0].Start, a[0].End
	}
	for _, dep := range [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}} {
		if !at[dep[1]].After(end[dep[0]]) {
			t.Errorf("%s started before %s ended", dep[1], dep[0])
		}
	}
}

func TestDuplicateStartReturnsTheExistingID(t *testing.T) {
	e := setup(t, nil)
	f := build(t, release("esc-dup"))
	ctx := context.Background()
	if _, err := flows.Start(ctx, e.client, f); err != nil {
		t.Fatal(err)
	}
	id, err := flows.Start(ctx, e.client, f)
	if !errors.Is(err, flows.ErrDuplicate) || id != f.ID() {
		t.Fatalf("second Start: got %q, %v; want %s and ErrDuplicate", id, err, f.ID())
	}
	e.startWorker(t, 8)
	e.awaitFlow(t, f.ID(), flows.StateCompleted)
	if id, err := flows.Start(ctx, e.client, f); !errors.Is(err, flows.ErrDuplicate) || id != f.ID() {
		t.Fatalf("Start of an ended flow: got %q, %v; want %s and ErrDuplicate", id, err, f.ID())
	}
	v, _ := e.store.Status(ctx, f.ID())
	for _, s := range v.Steps {
		if n := e.adapters.Calls(s.JobID); !s.OnFailure && n != 1 {
			t.Errorf("step %s: got %d calls, want 1", s.Name, n)
		}
	}
}

func TestListByStateAndName(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	var running []string
	for i := range 5 {
		f := build(t, release(fmt.Sprintf("esc-list-%d", i)))
		if _, err := flows.Start(ctx, e.client, f); err != nil {
			t.Fatal(err)
		}
		running = append(running, f.ID())
		time.Sleep(2 * time.Millisecond)
	}
	other := build(t, flows.New("refund", "esc-list-0").Step("audit", audit("evt-refund-0")))
	if _, err := flows.Start(ctx, e.client, other); err != nil {
		t.Fatal(err)
	}
	// One release fails: its capture is dead-lettered.
	if err := e.store.Failed(ctx, "release:esc-list-1", "capture", "card_declined"); err != nil {
		t.Fatal(err)
	}
	page, err := e.store.List(ctx, flows.Filter{State: flows.StateFailed}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != "release:esc-list-1" || page.Next != "" {
		t.Fatalf("failed flows: got %+v", page)
	}
	if name, reason := page.Items[0].FailedStep(); name != "capture" || reason != "card_declined" {
		t.Errorf("FailedStep: got %s %s", name, reason)
	}
	// Running releases, newest first, one a page.
	var got []string
	cursor := ""
	for range 10 {
		page, err := e.store.List(ctx, flows.Filter{State: flows.StateRunning, Name: "release"}, cursor, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Items {
			got = append(got, v.ID)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	want := []string{"release:esc-list-4", "release:esc-list-3", "release:esc-list-2", "release:esc-list-0"}
	if !slices.Equal(got, want) {
		t.Errorf("running releases: got %v, want %v", got, want)
	}
	all, err := e.store.List(ctx, flows.Filter{}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 6 || all.Items[0].ID != "refund:esc-list-0" {
		t.Errorf("all flows: got %d, first %s", len(all.Items), all.Items[0].ID)
	}
	if _, err := e.store.List(ctx, flows.Filter{}, "garbage!", 1); !errors.Is(err, flows.ErrBadCursor) {
		t.Errorf("bad cursor: got %v", err)
	}
	if _, err := e.store.List(ctx, flows.Filter{State: "sleeping"}, "", 1); err == nil {
		t.Error("unknown state: got no error")
	}
	// An index member whose flow is gone is dropped as List reads it.
	if err := e.rc.Del(ctx, "escrowjobs:flow:{release:esc-list-4}").Err(); err != nil {
		t.Fatal(err)
	}
	page, _ = e.store.List(ctx, flows.Filter{State: flows.StateRunning}, "", 100)
	if len(page.Items) != 4 {
		t.Errorf("running after one expired: got %d, want 4", len(page.Items))
	}
	if n, _ := e.rc.ZScore(ctx, "escrowjobs:flows:{index}:running", "release:esc-list-4").Result(); n != 0 {
		t.Error("stale index member not dropped")
	}
}

func TestEveryKeyHasAnExpiry(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	done := build(t, release("esc-ttl-1"))
	failing := build(t, release("esc-ttl-2"))
	for _, f := range []*flows.Flow{done, failing} {
		if _, err := flows.Start(ctx, e.client, f); err != nil {
			t.Fatal(err)
		}
	}
	e.adapters.FailWith(func(id string, _ int) error {
		if strings.Contains(id, "escttl2") {
			return fmt.Errorf("card declined: %w", asynq.SkipRetry)
		}
		return nil
	})
	e.startWorker(t, 8)
	e.awaitFlow(t, done.ID(), flows.StateCompleted)
	e.awaitFlow(t, failing.ID(), flows.StateFailed)
	var keys []string
	iter := e.rc.Scan(ctx, 0, "escrowjobs:flow*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) < 5 { // two flows, all, running, failed, counts
		t.Fatalf("keys: got %v", keys)
	}
	for _, k := range keys {
		ttl, err := e.rc.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("%s: PTTL %v, %v; want an expiry", k, ttl, err)
		}
		if ttl > flows.DefaultRetention {
			t.Errorf("%s: PTTL %v, more than the retention", k, ttl)
		}
	}
}
