package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/httpserve"
)

// HTTP server limits of Serve.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 64 << 10
	shutdownTimeout   = 10 * time.Second
)

// Serve serves the monitor on ln until ctx is done, then shuts down
// gracefully. It returns nil after a graceful shutdown.
func (m *Monitor) Serve(ctx context.Context, ln net.Listener) error {
	log := m.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if err := httpserve.Serve(ctx, srv, ln, shutdownTimeout); err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	return nil
}
