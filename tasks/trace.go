package tasks

import (
	"context"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Headers that Enqueue puts on every job (asynq task headers).
const (
	// HeaderReadyAt is when the job became due at enqueue (now, or its
	// ProcessAt/ProcessIn time), in Unix nanoseconds: the worker's
	// enqueue → start latency is measured from it. A short name: asynq
	// stores every header with each job.
	HeaderReadyAt = "ej-ready"
	// HeaderReadyAtV1 is the name HeaderReadyAt had before; ReadyAt still
	// reads it, for the jobs stored under it (outbox rows, scheduled jobs).
	HeaderReadyAtV1 = "escrowjobs-ready-at"
	// HeaderTraceParent and HeaderTraceState carry the W3C trace context
	// of the producer span (https://www.w3.org/TR/trace-context/).
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// TracerName is the instrumentation scope of the spans of this module.
const TracerName = "github.com/escrowjobs/escrowjobs"

// WithTracerProvider makes Enqueue start a producer span ("enqueue
// <type>") with tp and put its W3C trace context in the job's headers. Without
// it (or with a no-op provider, which observe.SetupTracing returns when no
// OTEL_* variable asks for export) Enqueue creates no span.
func WithTracerProvider(tp trace.TracerProvider) ClientOption {
	return func(c *Client) { c.tracing = NewTracing(tp) }
}

// Tracing starts producer spans and writes their context into task
// headers. It is the hook for every producer of jobs: Client.Enqueue uses
// it, and a producer that stores jobs first (the transactional outbox)
// calls Stamp when the job is created, so the trace starts where the
// caller's request is, not at relay time.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// NewTracing returns the Tracing of tp (W3C trace context). A nil tp, or
// the no-op provider (go.opentelemetry.io/otel/trace/noop, what
// observe.SetupTracing returns when no OTEL_* variable asks for tracing),
// returns nil, and a nil *Tracing does nothing: untraced enqueues run no
// tracing code at all.
func NewTracing(tp trace.TracerProvider) *Tracing {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return nil
	}
	return &Tracing{tracer: tp.Tracer(TracerName), prop: propagation.TraceContext{}}
}

// Start starts the producer span of t as a child of ctx's span.
func (tr *Tracing) Start(ctx context.Context, t *Task) (context.Context, trace.Span) {
	if tr == nil {
		return ctx, trace.SpanFromContext(context.Background()) // the no-op span
	}
	ctx, span := tr.tracer.Start(ctx, "enqueue "+t.Type(), trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "asynq"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", t.Queue),
			attribute.String("messaging.message.id", t.ID),
			attribute.String("escrowjobs.task_type", t.Type()),
			attribute.String("escrowjobs.transaction_id", t.transactionID),
		)
	}
	return ctx, span
}

// Inject writes the trace context of ctx into headers (traceparent,
// tracestate). It writes nothing when ctx has no sampled span.
func (tr *Tracing) Inject(ctx context.Context, headers map[string]string) {
	if tr == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	tr.prop.Inject(ctx, propagation.MapCarrier(headers))
}

// Stamp is the hook for producers that store a job before it is enqueued
// (the transactional outbox): call it where the job is created, in the
// request's context. It records the producer span ("enqueue <type>", ended
// at once) and returns t with the span's W3C trace context in its headers
// (the asynq task rebuilt with them), so that the stored job carries it to
// the worker, whose consumer span then joins the request's trace:
//
//	t, _ = tasks.NewStripeCapturePaymentTask(p)
//	t = tracing.Stamp(ctx, t)
//	err = outbox.Add(ctx, tx, t)
//
// A nil Tracing, or a task not built by New, returns t unchanged.
func (tr *Tracing) Stamp(ctx context.Context, t *Task) *Task {
	if tr == nil || t.opts == nil {
		return t
	}
	ctx, span := tr.Start(ctx, t)
	defer span.End()
	h := make(map[string]string, len(t.headers)+2)
	for k, v := range t.headers {
		h[k] = v
	}
	tr.Inject(ctx, h)
	out := *t
	out.headers = h
	out.Task = asynq.NewTaskWithHeaders(t.Type(), t.Payload(), h, t.opts...)
	return &out
}

// end ends span, recording err.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, RedactText(err.Error()))
	}
	span.End()
}

// Headers sets extra headers on the job, e.g. the trace context a
// transactional outbox captured when the job was created (Tracing.Inject).
// Enqueue keeps a traceparent given here instead of starting a new trace.
func Headers(h map[string]string) Option { return func(o *options) { o.headers = h } }

// asynqTask is t with this enqueue's headers: the ready time and the trace
// context of ctx. A Task not built by New is enqueued as it is.
func (c *Client) asynqTask(ctx context.Context, t *Task, now time.Time) *asynq.Task {
	if t.opts == nil {
		return t.Task
	}
	h := make(map[string]string, len(t.headers)+3)
	for k, v := range t.headers {
		h[k] = v
	}
	ready := t.readyAt
	if ready.IsZero() {
		ready = now.Add(t.delay)
	}
	SetReadyAt(h, ready)
	if _, given := h[HeaderTraceParent]; !given {
		c.tracing.Inject(ctx, h)
	}
	return asynq.NewTaskWithHeaders(t.Type(), t.Payload(), h, t.opts...)
}

// SetReadyAt sets headers' HeaderReadyAt to t, the time the job is due
// (read back by ReadyAt).
func SetReadyAt(headers map[string]string, t time.Time) {
	headers[HeaderReadyAt] = strconv.FormatInt(t.UnixNano(), 10)
}

// ReadyAt is the HeaderReadyAt time of a task's headers, or of the name
// it had before (HeaderReadyAtV1); zero when absent.
func ReadyAt(headers map[string]string) time.Time {
	if v, ok := headers[HeaderReadyAt]; ok {
		return unixNanos(v)
	}
	return unixNanos(headers[HeaderReadyAtV1])
}
