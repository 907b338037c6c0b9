package observe_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// With no OTEL_* variable set, tracing is a no-op: nothing is recorded or
// exported.
func ExampleSetupTracing() {
	env := map[string]string{} // e.g. {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
	tp, shutdown, err := observe.SetupTracing(context.Background(), func(k string) string { return env[k] }, "escrowjobs-server")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shutdown(context.Background())
	_, span := tp.Tracer("example").Start(context.Background(), "work")
	fmt.Println("recording:", span.IsRecording())
	// Output: recording: false
}

// A collector that reads Redis, cached: every scrape within 5 s shares one
// collection.
func ExampleNewCached() {
	queueSize := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "example_queue_size", Help: "Jobs pending."}, func() float64 {
		return 3 // e.g. read from Redis
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(observe.NewCached(queueSize, observe.QueueCollectInterval))
	mfs, _ := reg.Gather()
	fmt.Println(mfs[0].GetName(), mfs[0].GetMetric()[0].GetGauge().GetValue())
	// Output: example_queue_size 3
}

// Log lines written within a span carry its trace_id and span_id.
func ExampleLogHandler() {
	var buf bytes.Buffer
	log := slog.New(observe.LogHandler(slog.NewTextHandler(&buf, nil)))
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("example").Start(context.Background(), "job")
	log.InfoContext(ctx, "job done")
	span.End()
	fmt.Println(strings.Contains(buf.String(), "trace_id="+span.SpanContext().TraceID().String()))
	// Output: true
}
