package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
)

// DefaultMetricsAddr is where /healthz, /readyz and /metrics listen when
// METRICS_ADDR is not set.
const DefaultMetricsAddr = "127.0.0.1:9090"

// metricsAddr reads METRICS_ADDR: "off" disables the endpoints. Unset is
// DefaultMetricsAddr (reported by serveEndpoints as defaultAddr).
func metricsAddr(getenv func(string) string) (string, error) {
	v := strings.TrimSpace(getenv("METRICS_ADDR"))
	switch {
	case v == "":
		return DefaultMetricsAddr, nil
	case strings.EqualFold(v, "off"):
		return "", nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return "", fmt.Errorf("METRICS_ADDR %q: want host:port (e.g. 127.0.0.1:9090, :9090) or off", v)
	}
	return v, nil
}

// telemetry is the process's tracing and metrics.
type telemetry struct {
	tp       trace.TracerProvider
	shutdown func(context.Context) error
	reg      *prometheus.Registry
	jobs     *observe.JobMetrics
}

// newTelemetry sets up tracing from the OTEL_* variables and the private
// metrics registry with the per-type job metrics.
func newTelemetry(ctx context.Context, getenv func(string) string) (*telemetry, error) {
	tp, shutdown, err := observe.SetupTracing(ctx, getenv, "escrowjobs-server")
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	var names []string
	for _, t := range tasks.Types() {
		names = append(names, t.Name)
	}
	jobs, err := observe.NewJobMetrics(reg, names)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return &telemetry{tp: tp, shutdown: shutdown, reg: reg, jobs: jobs}, nil
}

// close flushes the spans still buffered.
func (t *telemetry) close(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.shutdown(ctx); err != nil {
		log.Warn("flushing traces failed", "error", err.Error())
	}
}

// httpClient is the HTTP client of an adapter (Stripe, Resend): a 30 s
// timeout and a client span per request.
func (t *telemetry) httpClient(peer string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: observe.Transport(nil, t.tp, peer)}
}

// serveEndpoints serves /healthz, /readyz and /metrics on addr until ctx is
// done. /metrics holds this process's own figures (its jobs' counters and
// histograms, its relay, its runtime); the cluster-wide figures read from
// Redis (asynq_* queue gauges, escrowjobs_partner_*, escrowjobs_flows_*)
// are the monitor's, so that a sum over every scraped process counts each
// queue, partner and flow once. It logs and returns the bound address ("metrics listening", addr) so that
// an address ending in :0 can be found ("" when not served).
//
// When METRICS_ADDR is not set and the default address is taken (a second
// server process on the host), the process runs without the endpoints and
// says so; an address that was set and cannot be bound stops the start.
//
// -dev passes ln, the listener it took itself (see listenOrFree).
func (t *telemetry) serveEndpoints(ctx context.Context, addr string, explicit bool, ln net.Listener, w *worker.Worker, log *slog.Logger) (bound string, stop func(), err error) {
	if addr == "" && ln == nil {
		log.Info("metrics endpoints disabled (METRICS_ADDR=off)")
		return "", func() {}, nil
	}
	if ln == nil {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil && !explicit {
		log.Warn("metrics endpoints not served: the default address is taken; set METRICS_ADDR (e.g. 127.0.0.1:9091) for this process",
			"addr", addr, "error", err.Error())
		return "", func() {}, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("METRICS_ADDR %s: %w", addr, err)
	}
	log.Info("metrics listening", "addr", ln.Addr().String(), "paths", "/healthz /readyz /metrics")
	h := observe.Endpoints{Ready: w.Ready, Gatherer: t.reg, Logger: log}.Handler()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := observe.Serve(sctx, ln, h); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("metrics endpoints stopped", "error", err.Error())
		}
	}()
	return ln.Addr().String(), func() { cancel(); <-done }, nil
}

// listenOrFree listens on addr; when addr is def (the address was not
// chosen) and taken, it listens on a free port of the same host instead
// and reports taken. -dev does this for the monitor and the metrics, as
// the embedded store does for 6379.
func listenOrFree(addr, def string) (ln net.Listener, taken bool, err error) {
	ln, err = net.Listen("tcp", addr)
	if err != nil && addr == def && errors.Is(err, syscall.EADDRINUSE) {
		host, _, _ := net.SplitHostPort(addr)
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
		taken = err == nil
	}
	return ln, taken, err
}
