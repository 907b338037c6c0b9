package observe

import (
	"net/http"

	"github.com/escrowjobs/escrowjobs/tasks"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Transport wraps base (http.DefaultTransport when nil) so that every
// request is a client span of tp named after the peer ("stripe POST",
// "webhook POST"), a child of the request context's span. No trace
// context is sent to the peer: Stripe, Resend and partners are outside
// our trace, and our trace IDs stay ours. No span holds a URL's query,
// user or password (url.full, errors), nor an e-mail address: partners
// put their tokens in the query.
func Transport(base http.RoundTripper, tp trace.TracerProvider, peer string) http.RoundTripper {
	if tasks.NewTracing(tp) == nil { // nil or the no-op provider: base unchanged
		if base == nil {
			return http.DefaultTransport
		}
		return base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(redactingProvider{tp}),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return peer + " " + r.Method }),
	)
}
