package observe_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/payloads"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
)

type mailerFunc func(context.Context, handlers.Mail) error

func (f mailerFunc) SendMail(ctx context.Context, m handlers.Mail) error { return f(ctx, m) }

// TestMailerSpan: each SendMail is an "smtp send" client span, child of
// the job's span, without the recipient; a failure is the span's status
// with the address masked. The no-op provider leaves the mailer as it is.
func TestMailerSpan(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var inner error
	m := observe.Mailer(mailerFunc(func(context.Context, handlers.Mail) error { return inner }), tp, "smtp")
	ctx, job := tp.Tracer("t").Start(context.Background(), "process send_release_email")
	mail := handlers.Mail{JobID: "send_release_email:escrow-esc-1", To: "jane@bücher.de", Data: payloads.SendReleaseEmail{TransactionID: "esc-1"}}
	if err := m.SendMail(ctx, mail); err != nil {
		t.Fatal(err)
	}
	inner = errors.New(`smtp: 550 mailbox "jane doe"@example.com unavailable`)
	if err := m.SendMail(ctx, mail); err == nil {
		t.Fatal("got nil error, want the mailer's")
	}
	job.End()
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("got %d spans, want 3", len(spans))
	}
	for i, s := range spans[:2] {
		if s.Name() != "smtp send" || s.Parent().SpanID() != job.SpanContext().SpanID() {
			t.Errorf("span %d: got %q under %s, want smtp send under the job span", i, s.Name(), s.Parent().SpanID())
		}
		for _, a := range s.Attributes() {
			if a.Value.String() == mail.To {
				t.Errorf("span %d: attribute %s holds the recipient", i, a.Key)
			}
		}
	}
	if st := spans[1].Status(); st.Code != codes.Error || st.Description == "" || containsAddress(st.Description) {
		t.Errorf("failed send: got status %v %q, want Error with the address masked", st.Code, st.Description)
	}
	plain := &nopMailer{}
	if got := observe.Mailer(plain, noop.NewTracerProvider(), "smtp"); got != handlers.Mailer(plain) {
		t.Errorf("no-op provider: got a wrapped mailer, want the mailer itself")
	}
}

type nopMailer struct{}

func (*nopMailer) SendMail(context.Context, handlers.Mail) error { return nil }

func containsAddress(s string) bool {
	return strings.Contains(s, `"jane doe"@example.com`) || strings.Contains(s, "jane@bücher.de")
}
