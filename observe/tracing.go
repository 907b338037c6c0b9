package observe

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// SetupTracing returns the TracerProvider the OTEL_* variables of getenv
// ask for, and a shutdown that flushes it (call it before exit).
//
//   - OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none, or neither
//     OTEL_TRACES_EXPORTER nor an OTLP endpoint set: a no-op provider.
//     Nothing is recorded or sent.
//   - OTEL_TRACES_EXPORTER=otlp, or OTEL_EXPORTER_OTLP_ENDPOINT /
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set: OTLP over HTTP/protobuf
//     (OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf if set), batched.
//     OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME (default service),
//     OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and
//     OTEL_TRACES_SAMPLER_ARG are honoured.
//
// Errors name the variable.
func SetupTracing(ctx context.Context, getenv func(string) string, service string) (trace.TracerProvider, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	if v := strings.ToLower(strings.TrimSpace(getenv("OTEL_SDK_DISABLED"))); v == "true" {
		return noop.NewTracerProvider(), none, nil
	}
	tracesEndpoint, endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	exporter := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	if exporter == "" && (tracesEndpoint != "" || endpoint != "") {
		exporter = "otlp"
	}
	switch exporter {
	case "", "none":
		return noop.NewTracerProvider(), none, nil
	case "otlp":
	default:
		return nil, nil, fmt.Errorf("OTEL_TRACES_EXPORTER %q is not supported: want otlp or none", exporter)
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := getenv(v); p != "" {
			if p != "http/protobuf" {
				return nil, nil, fmt.Errorf("%s %q is not supported: want http/protobuf", v, p)
			}
			break
		}
	}
	var opts []otlptracehttp.Option
	switch {
	case tracesEndpoint != "":
		if err := checkURL(tracesEndpoint); err != nil {
			return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: %w", err)
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(tracesEndpoint))
	case endpoint != "":
		if err := checkURL(endpoint); err != nil {
			return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(endpoint, "/")+"/v1/traces"))
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		if raw := getenv(v); raw != "" {
			h, err := keyValues(raw)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", v, err)
			}
			opts = append(opts, otlptracehttp.WithHeaders(h))
		}
	}
	sampler, err := samplerFromEnv(getenv)
	if err != nil {
		return nil, nil, err
	}
	attrs := []attribute.KeyValue{}
	if raw := getenv("OTEL_RESOURCE_ATTRIBUTES"); raw != "" {
		kv, err := keyValues(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
		}
		for k, v := range kv {
			if k != "service.name" {
				attrs = append(attrs, attribute.String(k, v))
			}
		}
		if v, ok := kv["service.name"]; ok {
			service = v
		}
	}
	if v := getenv("OTEL_SERVICE_NAME"); v != "" {
		service = v
	}
	attrs = append(attrs, attribute.String("service.name", service))
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	)
	return tp, tp.Shutdown, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL such as http://127.0.0.1:4318", raw)
	}
	return nil
}

// keyValues parses the W3C-baggage-like "k1=v1,k2=v2" of OTEL_*_HEADERS
// and OTEL_RESOURCE_ATTRIBUTES (values URL-encoded).
func keyValues(raw string) (map[string]string, error) {
	m := map[string]string{}
	for _, pair := range strings.Split(raw, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, errors.New("want key=value pairs separated by commas")
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("the value of %s is not URL-encoded correctly", k)
		}
		m[k] = dv
	}
	return m, nil
}

func samplerFromEnv(getenv func(string) string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		arg := getenv("OTEL_TRACES_SAMPLER_ARG")
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a number from 0 to 1", arg)
		}
		return r, nil
	}
	switch s := getenv("OTEL_TRACES_SAMPLER"); s {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		if s == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_SAMPLER %q is not supported: want always_on, always_off, traceidratio or their parentbased_ forms", s)
	}
}
