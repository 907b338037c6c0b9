package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/httpserve"
)

// Limits of Serve beyond httpserve.Server's timeouts.
const (
	maxHeaderBytes  = 64 << 10
	shutdownTimeout = 10 * time.Second
)

// Serve serves the monitor on ln until ctx is done, then shuts down
// gracefully. It returns nil after a graceful shutdown.
func (m *Monitor) Serve(ctx context.Context, ln net.Listener) error {
	log := m.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := httpserve.Server(m.Handler())
	srv.MaxHeaderBytes = maxHeaderBytes
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	if err := httpserve.Serve(ctx, srv, ln, shutdownTimeout); err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	return nil
}
