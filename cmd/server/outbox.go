package main

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/postgres"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// killAfterEnqueueEnv makes the relay SIGKILL its own process after its
// first batch is enqueued and before the rows are deleted. Only the crash
// test sets it; it is not part of the documented configuration.
const killAfterEnqueueEnv = "ESCROWJOBS_TEST_KILL_RELAY_AFTER_ENQUEUE"

// startOutbox runs the outbox relay when OUTBOX_DATABASE_URL is set
// (dbURL), enqueuing through client, its metrics on reg (read from the
// table at most every 5 s). stop ends it after the batch in hand.
func startOutbox(ctx context.Context, dbURL string, client *tasks.Client, reg prometheus.Registerer, getenv func(string) string, log *slog.Logger) (stop func(), err error) {
	if dbURL == "" {
		return func() {}, nil
	}
	safe := postgres.Redact(dbURL)
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	db, err := postgres.Open(octx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("OUTBOX_DATABASE_URL: %w", err)
	}
	pool := db.Pool()
	rc := outbox.RelayConfig{DB: pool, Client: client, Logger: log}
	if getenv(killAfterEnqueueEnv) == "1" {
		rc.AfterEnqueue = func(ids []string) {
			log.Warn("outbox relay: killing this process between enqueue and delete (test hook)", "enqueued", len(ids))
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
	relay, err := outbox.NewRelay(octx, rc)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("OUTBOX_DATABASE_URL %s: %w", safe, err)
	}
	for _, c := range relay.Collectors() {
		if err := reg.Register(observe.NewCached(c, observe.QueueCollectInterval)); err != nil {
			db.Close()
			return nil, fmt.Errorf("outbox metrics: %w", err)
		}
	}
	rctx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(rctx) }()
	log.Info("outbox relay running", "database", safe, "table", outbox.Table)
	return func() {
		stopRelay()
		<-done
		n := relay.Counts()
		log.Info("outbox relay stopped", "enqueued", n.Enqueued, "duplicates", n.Duplicates, "failures", n.Failures, "held_back", n.HeldBack)
		db.Close()
	}, nil
}
