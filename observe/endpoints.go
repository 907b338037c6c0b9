package observe

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/httpserve"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyTimeout bounds one /readyz check.
const ReadyTimeout = 2 * time.Second

// Endpoints are a worker's /healthz, /readyz and /metrics.
type Endpoints struct {
	// Ready returns nil when the process can do its work (the worker:
	// Redis answers and the fetch loops run).
	Ready func(ctx context.Context) error
	// Gatherer is the process's private registry.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// Handler serves GET/HEAD /healthz (200 while the process runs), /readyz
// (200, or 503 with the reason) and /metrics (Prometheus text).
func (e Endpoints) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok", "")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		defer cancel()
		if err := e.Ready(ctx); err != nil {
			if e.Logger != nil {
				e.Logger.Warn("not ready", "error", err.Error())
			}
			writeStatus(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		writeStatus(w, http.StatusOK, "ok", "")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.Gatherer, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	}))
	return mux
}

func writeStatus(w http.ResponseWriter, code int, status, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status string `json:"status"`
		Error  string `json:"error,omitempty"`
	}{status, reason})
}

// Serve serves h on ln until ctx is done, then shuts down within 5 s.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	if err := httpserve.Serve(ctx, httpserve.Server(h), ln, 5*time.Second); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
