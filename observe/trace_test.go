package observe_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"
)

// TestOneTraceFromEnqueueToStripeAndWebhook: a producer (this test, its
// own process) enqueues a capture and a webhook inside a request span;
// the real server binary, traced through OTEL_* variables only, processes
// them. A real OTLP/HTTP receiver gets one trace: request → enqueue
// (producer) → process (consumer, child of and linked to the producer) →
// the Stripe and webhook HTTP calls (client spans), across both processes.
// The server's log lines of those jobs carry the trace_id.
func TestOneTraceFromEnqueueToStripeAndWebhook(t *testing.T) {
	t.Parallel()
	otlp := startOTLP(t)
	redis := peertest.StartRedis(t)
	stripe := escrowtest.StartStripe(t, escrowtest.StripeConfig{Secret: stripeKey})
	stripe.AddIntent("pi_traced1", "requires_capture", 5000)
	rc := escrowtest.StartReceiver(t, webhookKey)
	srv := startServer(t, redis.URL(), stripe.URL, rc.URL+"/hooks",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+otlp.URL, "OTEL_SERVICE_NAME=escrowjobs-worker-test", "OTEL_BSP_SCHEDULE_DELAY=100")

	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.URL, "OTEL_SERVICE_NAME": "escrow-api-test"}
	tp, shutdown, err := observe.SetupTracing(context.Background(), func(k string) string { return env[k] }, "producer")
	if err != nil {
		t.Fatal(err)
	}
	opt, _ := asynq.ParseRedisURI(redis.URL())
	client := tasks.NewClient(opt, tasks.WithTracerProvider(tp))
	defer client.Close()
	insp := tasks.NewInspector(opt)
	defer insp.Close()

	ctx, root := tp.Tracer("test").Start(context.Background(), "POST /escrows/esc-traced/release", trace.WithSpanKind(trace.SpanKindServer))
	capture := escrowtest.Task(t, payloads.StripeCapturePayment{TransactionID: "esc-traced", PaymentIntentID: "pi_traced1"})
	hook := escrowtest.Task(t, payloads.WebhookEscrowStatusChanged{EventID: "evt-traced", PartnerID: partner, TransactionID: "esc-traced",
		PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: "2026-11-29T10:00:00Z"})
	for _, task := range []*tasks.Task{capture, hook} {
		if _, err := client.Enqueue(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	root.End()
	traceID := root.SpanContext().TraceID().String()
	for _, task := range []*tasks.Task{capture, hook} {
		escrowtest.AwaitState(t, insp, task.ID, "completed", 30*time.Second)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The spans each hop must have: name → (service, parent's name, kind).
	type want struct{ service, parent string }
	wants := map[string]want{
		"POST /escrows/esc-traced/release":      {"escrow-api-test", ""},
		"enqueue stripe_capture_payment":        {"escrow-api-test", "POST /escrows/esc-traced/release"},
		"enqueue webhook_escrow_status_changed": {"escrow-api-test", "POST /escrows/esc-traced/release"},
		"process stripe_capture_payment":        {"escrowjobs-worker-test", "enqueue stripe_capture_payment"},
		"process webhook_escrow_status_changed": {"escrowjobs-worker-test", "enqueue webhook_escrow_status_changed"},
		"stripe POST":                           {"escrowjobs-worker-test", "process stripe_capture_payment"},
		"webhook POST":                          {"escrowjobs-worker-test", "process webhook_escrow_status_changed"},
	}
	var byName map[string]span
	var inTrace []span
	escrowtest.Eventually(t, "every span of the trace at the OTLP receiver", 30*time.Second, func() bool {
		byName, inTrace = map[string]span{}, nil
		for _, s := range otlp.Spans() {
			if s.TraceID == traceID {
				inTrace = append(inTrace, s)
				byName[s.Name] = s
			}
		}
		for name := range wants {
			if _, ok := byName[name]; !ok {
				return false
			}
		}
		return true
	})
	byID := map[string]span{}
	for _, s := range inTrace {
		byID[s.SpanID] = s
	}
	for name, w := range wants {
		s := byName[name]
		if s.Service != w.service {
			t.Errorf("%s: got service %q, want %q", name, s.Service, w.service)
		}
		parent := byID[s.Parent].Name
		if w.parent == "" && s.Parent != "" || w.parent != "" && parent != w.parent {
			t.Errorf("%s: got parent %q (%s), want %q", name, parent, s.Parent, w.parent)
		}
	}
	for _, task := range []*tasks.Task{capture, hook} {
		consumer, producer := byName["process "+task.Type()], byName["enqueue "+task.Type()]
		if !slices.Contains(consumer.Links, producer.SpanID) {
			t.Errorf("%s: got links %v, want one to the producer span %s", consumer.Name, consumer.Links, producer.SpanID)
		}
		for k, v := range map[string]string{"messaging.message.id": task.ID, "escrowjobs.task_type": task.Type(), "messaging.destination.name": task.Queue} {
			if consumer.Attrs[k] != v {
				t.Errorf("%s: attribute %s got %q, want %q", consumer.Name, k, consumer.Attrs[k], v)
			}
		}
		if !strings.Contains(consumer.Attrs["escrowjobs.attempt"], "1") {
			t.Errorf("%s: attribute escrowjobs.attempt got %q, want 1", consumer.Name, consumer.Attrs["escrowjobs.attempt"])
		}
	}
	t.Logf("trace %s:\n%s", traceID, renderTrace(inTrace))

	// The server's lines about these jobs carry the trace ID.
	for _, task := range []*tasks.Task{capture, hook} {
		found := false
		for _, line := range strings.Split(srv.Output(), "\n") {
			if strings.Contains(line, `"msg":"job done"`) && strings.Contains(line, task.ID) {
				found = true
				if !strings.Contains(line, `"trace_id":"`+traceID+`"`) || !strings.Contains(line, `"span_id":"`+byName["process "+task.Type()].SpanID+`"`) {
					t.Errorf("log line of %s: got %s, want trace_id %s and the consumer's span_id", task.ID, line, traceID)
				}
			}
		}
		if !found {
			t.Errorf("no \"job done\" line for %s in the server log", task.ID)
		}
	}
}

// renderTrace prints spans as a tree: name [service] under its parent.
func renderTrace(spans []span) string {
	var b strings.Builder
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		kids := []span{}
		for _, s := range spans {
			if s.Parent == parent {
				kids = append(kids, s)
			}
		}
		slices.SortFunc(kids, func(a, b span) int { return strings.Compare(a.Name, b.Name) })
		for _, s := range kids {
			links := ""
			if len(s.Links) > 0 {
				links = fmt.Sprintf(" links=%v", s.Links)
			}
			fmt.Fprintf(&b, "%s%s [%s %s] span=%s%s\n", strings.Repeat("  ", depth), s.Name, s.Service, s.Kind, s.SpanID, links)
			walk(s.SpanID, depth+1)
		}
	}
	walk("", 0)
	return b.String()
}
