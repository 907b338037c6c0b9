package observe

import (
	"context"
	"reflect"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/escrowjobs/escrowjobs/tasks"
)

// redactingProvider hands out tracers whose spans never hold a URL's
// query, user or password, nor an e-mail address (tasks.RedactText): not
// in an attribute (url.full, where partners put their tokens in the
// query), not in a status description, not in a recorded error (a
// *url.Error names the whole URL).
type redactingProvider struct{ trace.TracerProvider }

func (p redactingProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return redactingTracer{p.TracerProvider.Tracer(name, opts...)}
}

type redactingTracer struct{ trace.Tracer }

func (t redactingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	o := []trace.SpanStartOption{trace.WithSpanKind(cfg.SpanKind()), trace.WithAttributes(redactAttrs(cfg.Attributes())...), trace.WithLinks(cfg.Links()...)}
	if ts := cfg.Timestamp(); !ts.IsZero() {
		o = append(o, trace.WithTimestamp(ts))
	}
	if cfg.NewRoot() {
		o = append(o, trace.WithNewRoot())
	}
	ctx, s := t.Tracer.Start(ctx, name, o...)
	rs := redactingSpan{s}
	return trace.ContextWithSpan(ctx, rs), rs
}

type redactingSpan struct{ trace.Span }

func (s redactingSpan) SetAttributes(kv ...attribute.KeyValue) {
	s.Span.SetAttributes(redactAttrs(kv)...)
}

func (s redactingSpan) SetStatus(code codes.Code, description string) {
	s.Span.SetStatus(code, tasks.RedactText(description))
}

func (s redactingSpan) AddEvent(name string, opts ...trace.EventOption) {
	s.Span.AddEvent(name, redactEvent(nil, opts)...)
}

// RecordError records err as the SDK does (an "exception" event with its
// type and message), its message redacted.
func (s redactingSpan) RecordError(err error, opts ...trace.EventOption) {
	if err == nil || !s.IsRecording() {
		return
	}
	s.Span.AddEvent("exception", redactEvent([]attribute.KeyValue{
		attribute.String("exception.type", errorType(err)),
		attribute.String("exception.message", tasks.RedactText(err.Error())),
	}, opts)...)
}

// redactEvent is opts with their attributes redacted, after first.
func redactEvent(first []attribute.KeyValue, opts []trace.EventOption) []trace.EventOption {
	cfg := trace.NewEventConfig(opts...)
	o := []trace.EventOption{trace.WithAttributes(append(first, redactAttrs(cfg.Attributes())...)...)}
	if ts := cfg.Timestamp(); !ts.IsZero() {
		o = append(o, trace.WithTimestamp(ts))
	}
	return o
}

// redactAttrs is kv with every string redacted.
func redactAttrs(kv []attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, len(kv))
	for i, a := range kv {
		switch a.Value.Type() {
		case attribute.STRING:
			a = a.Key.String(tasks.RedactText(a.Value.AsString()))
		case attribute.STRINGSLICE:
			ss := a.Value.AsStringSlice()
			for j := range ss {
				ss[j] = tasks.RedactText(ss[j])
			}
			a = a.Key.StringSlice(ss)
		}
		out[i] = a
	}
	return out
}

// errorType names err's type as the SDK's RecordError does.
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}
