package worker

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotRunning is returned by Ready before Start and after Shutdown.
var ErrNotRunning = errors.New("worker: fetch loops are not running")

// Ready returns nil when the fetch loops run and Redis answers a PING
// within ctx (the worker's /readyz).
func (w *Worker) Ready(ctx context.Context) error {
	if !w.running.Load() {
		return ErrNotRunning
	}
	if err := w.rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("worker: Redis does not answer: %w", err)
	}
	return nil
}

// FetchLoops is the number of asynq servers the worker runs.
func (w *Worker) FetchLoops() int { return len(w.servers) }
