package flows_test

import (
	"context"
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
// itself (but the partner event, which tasks.Client numbers). What it
// stores is what tasks.Client stores for the same flow whose middleware
// enqueues them (its hash without the m:<step> fields, as a flow started
// by an earlier version): the same asynq message (type, payload, queue,
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
		fields := []string{"m:seller-email", "m:later"}
		if name == "client" {
			if err := sd.e.rc.HDel(ctx, key, fields...).Err(); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, f := range append(fields, "m:partner-webhook") {
				n, err := sd.e.rc.HExists(ctx, key, f).Result()
				if want := f != "m:partner-webhook"; err != nil || n != want {
					t.Fatalf("flow hash: %s stored = %v (%v), want %v", f, n, err, want)
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
