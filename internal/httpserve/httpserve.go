// Package httpserve is what the monitor and the worker's metrics endpoints
// share to serve HTTP: the server limits (Server) and the loop that serves
// until the context is done and then shuts down gracefully (Serve).
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Limits of a Server: a client must send its headers within
// ReadHeaderTimeout and its request within ReadTimeout, an answer must be
// written within WriteTimeout, and an idle keep-alive connection is closed
// after IdleTimeout.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 60 * time.Second
)

// Server is an HTTP server of h with the limits above.
func Server(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout,
		WriteTimeout: WriteTimeout, IdleTimeout: IdleTimeout}
}

// Serve serves srv on ln until ctx is done, then shuts srv down, giving the
// requests in flight at most grace to finish (and closing what is left
// after that). It returns nil after a graceful shutdown; an error says
// whether serving ("serve on <addr>: …") or the shutdown failed.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
