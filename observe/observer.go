package observe

import (
	"context"

	"errors"
	"time"

	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Observer measures and traces every attempt of a worker's jobs.
type Observer struct {
	metrics *JobMetrics
	tracer  trace.Tracer // nil: no spans
	prop    propagation.TextMapPropagator
	now     func() time.Time
}

// NewObserver records attempts in m (nil: no metrics) and traces them with
// tp (nil or the no-op provider SetupTracing returns without OTEL_*
// variables: no tracing code runs at all).
func NewObserver(m *JobMetrics, tp trace.TracerProvider) *Observer {
	o := &Observer{metrics: m, prop: propagation.TraceContext{}, now: time.Now}
	if tasks.NewTracing(tp) != nil {
		o.tracer = tp.Tracer(tasks.TracerName)
	}
	return o
}

// Wrap returns next (the mux) measured and traced: one consumer span
// "process <type>" per attempt, child of the producer span whose W3C
// context the task carries and linked to it, with the job ID, type, queue
// and attempt; the span is in the handler's context (for child spans and
// LogHandler). Counters and histograms per type (see the package doc).
func (o *Observer) Wrap(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := o.now()
		retried, _ := asynq.GetRetryCount(ctx)
		if o.metrics != nil && retried == 0 {
			if ready := tasks.ReadyAt(t.Headers()); !ready.IsZero() {
				o.metrics.of(t.Type()).latency.Observe(max(start.Sub(ready), 0).Seconds())
			}
		}
		var span trace.Span
		if o.tracer != nil {
			ctx, span = o.startConsumer(ctx, t, retried)
		}
		err := next.ProcessTask(ctx, t)
		if span != nil {
			if err != nil {
				span.SetStatus(codes.Error, tasks.RedactText(err.Error()))
			}
			span.End()
		}
		if o.metrics != nil {
			o.record(ctx, t.Type(), retried, o.now().Sub(start), err)
		}
		return err
	})
}

func (o *Observer) startConsumer(ctx context.Context, t *asynq.Task, retried int) (context.Context, trace.Span) {
	producer := o.prop.Extract(ctx, propagation.MapCarrier(t.Headers()))
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	if sc := trace.SpanContextFromContext(producer); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	ctx, span := o.tracer.Start(producer, "process "+t.Type(), opts...)
	if span.IsRecording() {
		id, _ := asynq.GetTaskID(ctx)
		queue, _ := asynq.GetQueueName(ctx)
		span.SetAttributes(
			attribute.String("messaging.system", "asynq"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", queue),
			attribute.String("messaging.message.id", id),
			attribute.String("escrowjobs.task_type", t.Type()),
			attribute.Int("escrowjobs.attempt", retried+1),
		)
	}
	return ctx, span
}

// record counts one finished attempt. A failure is a retry unless the
// error is permanent (asynq.SkipRetry) or the job had no retry left: then
// asynq archives it, a dead letter.
func (o *Observer) record(ctx context.Context, taskType string, retried int, d time.Duration, err error) {
	m := o.metrics.of(taskType)
	m.duration.Observe(d.Seconds())
	switch {
	case err == nil:
		m.processed.Inc()
	case errors.Is(err, asynq.RevokeTask):
		m.failed.Inc()
	default:
		m.failed.Inc()
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if errors.Is(err, asynq.SkipRetry) || retried >= maxRetry {
			m.deadLettered.Inc()
		} else {
			m.retried.Inc()
		}
	}
}
