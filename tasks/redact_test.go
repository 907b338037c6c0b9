package tasks

import (
	"context"
	"errors"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestRedactText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`Post "https://hooks.acme.test/in?token=s3cret&x=1": dial tcp: refused`, `Post "https://hooks.acme.test/in?xxxxx": dial tcp: refused`},
		{"redis://:hunter22@redis.internal:6379/0 refused", "redis://xxxxx@redis.internal:6379/0 refused"},
		{"redis://default:hunter22@redis.internal:6379", "redis://xxxxx@redis.internal:6379"},
		{"https://user:pw@h.test/p#frag?x", "https://xxxxx@h.test/p?xxxxx"},
		{"https://h.test?token=abc", "https://h.test?xxxxx"},
		{"mail jane.doe@example.com failed", "mail j***@example.com failed"},
		{"redis://u:p%40ss@host refused for jane@example.com", "redis://xxxxx@host refused for j***@example.com"},
		{"no secrets here", "no secrets here"},
		{"http://127.0.0.1:80/hooks?token=t&to=jane@example.com", "http://127.0.0.1:80/hooks?xxxxx"},
		{"https://h.test/users/jane@example.com/x", "https://h.test/***@example.com/x"},
	} {
		if got := RedactText(tc.in); got != tc.want {
			t.Errorf("RedactText(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A job's span ends with its error redacted: no token of a URL's query,
// no password, no address.
func TestEndSpanRedactsTheError(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	_, span := tp.Tracer("test").Start(context.Background(), "process")
	endSpan(span, errors.New(`webhook w1: Post "https://acme:pw_hunter22@hooks.acme.test/in?token=tok_s3cret": refused; to jane.doe@example.com`))
	got := exp.GetSpans()[0].Status.Description
	for _, secret := range []string{"tok_s3cret", "pw_hunter22", "jane.doe"} {
		if strings.Contains(got, secret) {
			t.Errorf("status: got %q, want no %q", got, secret)
		}
	}
	if want := `Post "https://xxxxx@hooks.acme.test/in?xxxxx": refused`; !strings.Contains(got, want) {
		t.Errorf("status: got %q, want it to hold %q", got, want)
	}
}
