package observe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestSetupTracingReadsOnlyOTELVariables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantSDK bool   // a recording SDK provider, else the no-op one
		wantErr string // the variable the error names
	}{
		{"nothing set: no-op", nil, false, ""},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, false, ""},
		{"SDK disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, false, ""},
		{"endpoint set", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, ""},
		{"traces endpoint set", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, ""},
		{"exporter otlp, default endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, ""},
		{"exporter zipkin", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, "OTEL_TRACES_EXPORTER"},
		{"grpc protocol", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"bad endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, false, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"bad sampler", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"}, false, "OTEL_TRACES_SAMPLER"},
		{"bad sampler arg", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, false, "OTEL_TRACES_SAMPLER_ARG"},
		{"bad headers", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, false, "OTEL_EXPORTER_OTLP_HEADERS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, shutdown, err := observe.SetupTracing(context.Background(), func(k string) string { return tt.env[k] }, "test")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer shutdown(context.Background())
			_, isSDK := tp.(*sdktrace.TracerProvider)
			_, isNoop := tp.(noop.TracerProvider)
			if isSDK != tt.wantSDK || isNoop == tt.wantSDK {
				t.Errorf("got provider %T, want SDK %v", tp, tt.wantSDK)
			}
		})
	}
}

// countingCollector counts its collections, each taking a while.
type countingCollector struct {
	n    atomic.Int64
	desc *prometheus.Desc
}

func (c *countingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *countingCollector) Collect(ch chan<- prometheus.Metric) {
	c.n.Add(1)
	time.Sleep(50 * time.Millisecond)
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
}

func TestCachedCollectsOncePerInterval(t *testing.T) {
	t.Parallel()
	inner := &countingCollector{desc: prometheus.NewDesc("x", "x", nil, nil)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(observe.NewCached(inner, time.Hour))
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mfs, err := reg.Gather()
			if err != nil || len(mfs) != 1 || mfs[0].GetMetric()[0].GetGauge().GetValue() != 1 {
				t.Errorf("gather: got %v, %v; want x = 1", mfs, err)
			}
		}()
	}
	wg.Wait()
	if got := inner.n.Load(); got != 1 {
		t.Errorf("50 concurrent gathers: got %d collections, want 1", got)
	}
	short := &countingCollector{desc: prometheus.NewDesc("y", "y", nil, nil)}
	c := observe.NewCached(short, time.Millisecond)
	for range 3 {
		ch := make(chan prometheus.Metric, 1)
		c.Collect(ch)
		time.Sleep(2 * time.Millisecond)
	}
	if got := short.n.Load(); got != 3 {
		t.Errorf("three gathers an interval apart: got %d collections, want 3", got)
	}
}

func TestLogHandlerAddsTraceIDWithinASpan(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(observe.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("t").Start(context.Background(), "job")
	log.InfoContext(ctx, "inside")
	span.End()
	log.InfoContext(context.Background(), "outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2: %s", len(lines), buf.String())
	}
	var in, out map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &in)
	_ = json.Unmarshal([]byte(lines[1]), &out)
	if got, want := in["trace_id"], span.SpanContext().TraceID().String(); got != want {
		t.Errorf("inside the span: got trace_id %v, want %s", got, want)
	}
	if got, want := in["span_id"], span.SpanContext().SpanID().String(); got != want {
		t.Errorf("inside the span: got span_id %v, want %s", got, want)
	}
	if in["component"] != "test" {
		t.Errorf("inside the span: got component %v, want the logger's attributes kept", in["component"])
	}
	if _, ok := out["trace_id"]; ok {
		t.Errorf("outside a span: got trace_id %v, want none", out["trace_id"])
	}
}
