package tasks_test

import (
	"context"
	"testing"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestStampedTaskStoredAndRelayedKeepsTraceAndHistory: a job stamped at
// creation (Tracing.Stamp), stored as the outbox stores it (type, payload,
// headers, options) and enqueued later as a rebuilt task carries the
// producer's trace context to Redis and is in its escrow's history.
func TestStampedTaskStoredAndRelayedKeepsTraceAndHistory(t *testing.T) {
	opt, err := asynq.ParseRedisURI(peertest.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tr := tasks.NewTracing(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	task, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-outbox-1", PaymentIntentID: "pi_outbox1"})
	if err != nil {
		t.Fatal(err)
	}
	stamped := tr.Stamp(context.Background(), task)
	traceparent := stamped.Headers()[tasks.HeaderTraceParent]
	if len(traceparent) != 55 {
		t.Fatalf("stamped headers: got %v, want a traceparent", stamped.Headers())
	}
	if spans := rec.Ended(); len(spans) != 1 || spans[0].Name() != "enqueue stripe_capture_payment" {
		t.Fatalf("producer spans: got %d, want one named enqueue stripe_capture_payment", len(spans))
	}
	// What a relay rebuilds from the stored row.
	relayed := &tasks.Task{ID: stamped.ID, Queue: stamped.Queue,
		Task: asynq.NewTaskWithHeaders(stamped.Type(), stamped.Payload(), stamped.Headers(), asynq.TaskID(stamped.ID), asynq.Queue(stamped.Queue))}
	client := tasks.NewClient(opt)
	defer client.Close()
	if _, err := client.Enqueue(context.Background(), relayed); err != nil {
		t.Fatal(err)
	}
	insp := tasks.NewInspector(opt)
	defer insp.Close()
	info, err := insp.Asynq().GetTaskInfo(stamped.Queue, stamped.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Headers[tasks.HeaderTraceParent]; got != traceparent {
		t.Errorf("stored traceparent: got %q, want %q", got, traceparent)
	}
	h, err := insp.History(context.Background(), "esc-outbox-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || h[0].ID != stamped.ID || h[0].State != "pending" {
		t.Errorf("history: got %+v, want the relayed job, pending", h)
	}
}
