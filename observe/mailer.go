package observe

import (
	"context"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/tasks"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Mailer wraps m so that every SendMail is a client span "<name> send"
// (e.g. "smtp send"), a child of the job's span. The recipient is not an
// attribute: customer addresses stay out of traces. tp nil or no-op
// returns m.
func Mailer(m handlers.Mailer, tp trace.TracerProvider, name string) handlers.Mailer {
	if tasks.NewTracing(tp) == nil {
		return m
	}
	return tracedMailer{next: m, tracer: tp.Tracer("github.com/escrowjobs/escrowjobs"), name: name + " send"}
}

type tracedMailer struct {
	next   handlers.Mailer
	tracer trace.Tracer
	name   string
}

func (t tracedMailer) SendMail(ctx context.Context, m handlers.Mail) error {
	ctx, span := t.tracer.Start(ctx, t.name, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.message.id", m.JobID), attribute.String("escrowjobs.task_type", m.Data.TaskType()))
	}
	err := t.next.SendMail(ctx, m)
	if err != nil {
		span.SetStatus(codes.Error, tasks.RedactText(err.Error()))
	}
	return err
}
