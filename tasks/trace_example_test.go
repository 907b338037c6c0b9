package tasks_test

import (
	"context"
	"fmt"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// A producer that stores jobs before enqueuing them (a transactional
// outbox) starts the producer span and captures its W3C trace context in
// the job's headers when the job is created; the Headers option carries it
// to the worker later.
func ExampleTracing_Inject() {
	tr := tasks.NewTracing(sdktrace.NewTracerProvider())
	task, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-123", PaymentIntentID: "pi_3MtwBwLkdIwHu7ix"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, span := tr.Start(context.Background(), task)
	headers := map[string]string{}
	tr.Inject(ctx, headers)
	span.End()
	fmt.Println(len(headers[tasks.HeaderTraceParent]), headers[tasks.HeaderTraceParent][:3])
	// later, at relay time: tasks.NewStripeCapturePaymentTask(p, tasks.Headers(headers))
	// Output: 55 00-
}
