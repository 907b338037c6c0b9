package flows_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"
)

// On one Redis the capture's advancement script enqueues its dependents
// itself, the partner event too. What it stores is what tasks.Client
// stores for the same flow whose middleware enqueues them (its hash
// without the q:<step> fields, as on a Cluster): the same asynq message
// (type, payload with the partner event's sequence, queue,
// retries, timeout, retention, headers with the flow's trace context and
// the ready time), the same state (a delayed step scheduled), the
// escrow's history entries, and a wake-up for each.
func TestScriptEnqueuesTheDependentsAsTheClientDoes(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	const esc = "esc-inline"
	def := func() *flows.Flow {
		return build(t, release(esc).Step("later", audit("evt-"+esc+"-later"), flows.After("capture"), flows.With(tasks.ProcessIn(time.Hour))))
	}
	type side struct {
		e     *env
		f     *flows.Flow
		at    time.Time
		wakes []string
	}
	sides := map[string]*side{"script": {e: setup(t, nil), f: def()}, "client": {e: setup(t, nil), f: def()}}
	for name, sd := range sides {
		if _, err := flows.Start(ctx, sd.e.client, sd.f); err != nil {
			t.Fatal(err)
		}
		key := "escrowjobs:flow:{" + sd.f.ID() + "}"
		fields := []string{"q:seller-email", "q:partner-webhook", "q:later"}
		if name == "client" {
			if err := sd.e.rc.HDel(ctx, key, fields...).Err(); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, f := range fields {
				if n, err := sd.e.rc.HExists(ctx, key, f).Result(); err != nil || !n {
					t.Fatalf("flow hash: %s stored = %v (%v), want true", f, n, err)
				}
			}
		}
		sub := sd.e.rc.Subscribe(ctx, tasks.WakeChannel("default"), tasks.WakeChannel("low"))
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		mw := sd.e.store.Middleware(sd.e.client)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
		sd.at = time.Now()
		if err := mw.ProcessTask(ctx, stepTask(sd.f.ID(), "capture")); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			m, err := sub.ReceiveMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			w := m.Payload
			if strings.HasPrefix(w, "s") {
				w = "s" // the due second
			}
			sd.wakes = append(sd.wakes, m.Channel+" "+w)
		}
		sub.Close()
	}
	s, c := sides["script"], sides["client"]
	if got, want := strings.Join(sorted(s.wakes), ", "), strings.Join(sorted(c.wakes), ", "); got != want {
		t.Errorf("wake-ups: got %s, want %s", got, want)
	}
	for _, name := range []string{"seller-email", "partner-webhook", "later"} {
		id := s.f.JobIDs()[name]
		queue := "default"
		if name == "later" {
			queue = "low"
		}
		got, err := s.e.insp.Asynq().GetTaskInfo(queue, id)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := c.e.insp.Asynq().GetTaskInfo(queue, id)
		if err != nil {
			t.Fatalf("%s (client): %v", name, err)
		}
		for _, f := range []struct {
			field     string
			got, want any
		}{
			{"type", got.Type, want.Type}, {"payload", string(got.Payload), string(want.Payload)}, {"queue", got.Queue, want.Queue},
			{"state", got.State, want.State}, {"max retry", got.MaxRetry, want.MaxRetry}, {"timeout", got.Timeout, want.Timeout},
			{"deadline", got.Deadline, want.Deadline}, {"retention", got.Retention, want.Retention},
			{"traceparent", got.Headers[tasks.HeaderTraceParent], want.Headers[tasks.HeaderTraceParent]},
			{"headers", len(got.Headers), len(want.Headers)},
		} {
			if f.got != f.want {
				t.Errorf("%s: %s: got %v, want %v", name, f.field, f.got, f.want)
			}
		}
		for k, v := range want.Headers {
			if k != tasks.HeaderReadyAt && got.Headers[k] != v {
				t.Errorf("%s: header %s: got %q, want %q", name, k, got.Headers[k], v)
			}
		}
		ready, wantReady := tasks.ReadyAt(got.Headers), s.at
		if name == "later" {
			wantReady = wantReady.Add(time.Hour)
			if d := got.NextProcessAt.Sub(wantReady); d < -time.Second || d > time.Minute {
				t.Errorf("%s: due at %s, want about %s", name, got.NextProcessAt, wantReady)
			}
		}
		if d := ready.Sub(wantReady); d < 0 || d > time.Minute {
			t.Errorf("%s: ready at %s, want just after %s", name, ready, wantReady)
		}
	}
	if p := string(s.e.storedPayload(t, s.f.JobIDs()["partner-webhook"])); !strings.Contains(p, `"sequence":1}`) {
		t.Errorf("partner event: got payload %s, want the escrow's first sequence", p)
	}
	hist := func(e *env) []string {
		h, err := e.insp.History(ctx, esc, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, j := range h {
			out = append(out, j.ID+" "+j.Queue+" "+j.State)
		}
		return sorted(out)
	}
	if got, want := strings.Join(hist(s.e), "; "), strings.Join(hist(c.e), "; "); got != want {
		t.Errorf("escrow's history: got %s, want %s", got, want)
	}
	// The script registered the partner event in its partner's order set
	// as the client does, and wrote the history lines, not the older hash.
	for name, sd := range sides {
		score, err := sd.e.rc.ZScore(ctx, "escrowjobs:seq:{"+esc+"}:partner-acme", sd.f.JobIDs()["partner-webhook"]).Result()
		if err != nil || score != 1 {
			t.Errorf("%s: partner event in its order set: got score %v (%v), want 1", name, score, err)
		}
		if n, err := sd.e.rc.Exists(ctx, "escrowjobs:index:"+esc).Result(); err != nil || n != 0 {
			t.Errorf("%s: older history hash: got %d key(s) (%v), want none", name, n, err)
		}
	}
	// The next partner event of the escrow, enqueued directly, takes the
	// next number of the same counter.
	next, err := tasks.New(payloads.WebhookEscrowStatusChanged{EventID: "evt-" + esc + "-next", PartnerID: "partner-acme", TransactionID: esc,
		PreviousStatus: payloads.StatusReleased, Status: payloads.StatusDisputed, OccurredAt: "2026-11-29T11:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.e.client.Enqueue(ctx, next); err != nil {
		t.Fatal(err)
	}
	if p := string(s.e.storedPayload(t, next.ID)); !strings.Contains(p, `"sequence":2}`) {
		t.Errorf("the escrow's next partner event: got payload %s, want sequence 2", p)
	}
}

// storedPayload is the payload asynq holds of job id.
func (e *env) storedPayload(t *testing.T, id string) []byte {
	t.Helper()
	for _, q := range []string{"default", "low", "critical"} {
		if info, err := e.insp.Asynq().GetTaskInfo(q, id); err == nil {
			return info.Payload
		}
	}
	t.Fatalf("job %s not found", id)
	return nil
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// A flow started before q:<step> kept its waiting steps as m:<step>, with
// the escrow's history in the older hash: the script still enqueues them
// from it, and History finds them.
func TestScriptEnqueuesAStepKeptInTheOlderForm(t *testing.T) {
	ctx := context.Background()
	const esc = "esc-older-form"
	e := setup(t, nil)
	f := build(t, release(esc))
	if _, err := flows.Start(ctx, e.client, f); err != nil {
		t.Fatal(err)
	}
	key := "escrowjobs:flow:{" + f.ID() + "}"
	q, err := e.rc.HGet(ctx, key, "q:seller-email").Result()
	if err != nil {
		t.Fatal(err)
	}
	line, rest, _ := strings.Cut(q, "\n")
	var head map[string]any
	if err := json.Unmarshal([]byte(line), &head); err != nil {
		t.Fatal(err)
	}
	delete(head, "hl")
	delete(head, "hr")
	head["hk"] = "escrowjobs:index:" + esc
	older, err := json.Marshal(head)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rc.HSet(ctx, key, "m:seller-email", string(older)+"\n"+rest).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rc.HDel(ctx, key, "q:seller-email").Err(); err != nil {
		t.Fatal(err)
	}
	mw := e.store.Middleware(e.client)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	if err := mw.ProcessTask(ctx, stepTask(f.ID(), "capture")); err != nil {
		t.Fatal(err)
	}
	id := f.JobIDs()["seller-email"]
	if _, err := e.insp.Asynq().GetTaskInfo("default", id); err != nil {
		t.Fatalf("seller-email: got %v, want its job enqueued", err)
	}
	if ok, err := e.rc.HExists(ctx, "escrowjobs:index:"+esc, id).Result(); err != nil || !ok {
		t.Errorf("older history hash: got field %v (%v), want the job's", ok, err)
	}
	h, err := e.insp.History(ctx, esc, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, j := range h {
		found = found || j.ID == id
	}
	if !found {
		t.Errorf("History of %s: got %v, want %s in it", esc, h, id)
	}
}
