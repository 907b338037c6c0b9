package flows_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/hibiken/asynq"
)

// The start job is no registered job type: the mux alone refuses it for
// good (archived at once, not retried); only the flow middleware runs it.
func TestStartJobRunsOnlyThroughTheMiddleware(t *testing.T) {
	mux, err := handlers.NewServeMux(escrowtest.NewAdapters().Deps(escrowtest.NewAdapters(), slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	err = mux.ProcessTask(context.Background(), asynq.NewTask(flows.StartType, []byte(`{}`)))
	if !errors.Is(err, asynq.ErrHandlerNotFound) || !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("mux without the middleware: got %v, want handler not found, skip retry", err)
	}
	e := setup(t, nil)
	mw := e.store.Middleware(e.client)(mux)
	if err := mw.ProcessTask(context.Background(), asynq.NewTask(flows.StartType, []byte(`not json`))); !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("start job with a bad payload: got %v, want skip retry", err)
	}
}
