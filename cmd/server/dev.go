package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/devmode"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
)

const devBanner = `
  ┌─────────────────────────────────────────────────────────────────────┐
  │ escrowjobs -dev: IN-MEMORY STORE, NOTHING SURVIVES A RESTART.        │
  │ E-mails, Stripe calls, webhooks and audit events are only logged.    │
  └─────────────────────────────────────────────────────────────────────┘
`

// runDev runs the worker against an embedded store with log adapters.
func runDev(ctx context.Context, f flags, getenv func(string) string, stdout io.Writer, log *slog.Logger) error {
	store, err := devmode.StartStore(f.devRedisAddr)
	if err != nil {
		return err
	}
	defer store.Close()
	redisOpt := asynq.RedisClientOpt{Addr: store.Addr()}

	dir, err := os.MkdirTemp("", "escrowjobs-dev-")
	if err != nil {
		return fmt.Errorf("dev: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	dl, err := deadletter.OpenFile(filepath.Join(dir, "dead-letters.jsonl"))
	if err != nil {
		return err
	}
	defer dl.Close()

	tel, err := newTelemetry(ctx, getenv)
	if err != nil {
		return err
	}
	defer tel.close(log)
	client := tasks.NewClient(redisOpt, tasks.WithTracerProvider(tel.tp))
	defer client.Close()
	mux, err := handlers.NewServeMux(handlers.Deps{
		Mailer: devmode.NewMailer(log), Payments: devmode.Payments{Log: log}, Sender: devmode.Sender{Log: log},
		Audit: devmode.NewAudit(log), Enqueuer: client, Logger: log,
	})
	if err != nil {
		return err
	}
	inspector := tasks.NewInspector(redisOpt)
	defer inspector.Close()
	fl := flows.NewStore(client.Redis(), inspector, flows.WithClient(client), flows.Logger(log.With("component", "flows")))
	mux.Use(fl.Middleware(client)) // the flow metrics are the monitor's (fl.Collector reads the fleet's)
	w, err := worker.New(worker.Config{Redis: redisOpt, DeadLetters: dl, Logger: log, ShutdownTimeout: 5 * time.Second, Flows: fl},
		observe.NewObserver(tel.jobs, tel.tp).Wrap(mux))
	if err != nil {
		return err
	}
	// The worker's /healthz, /readyz and /metrics, as in production
	// (METRICS_ADDR, default 127.0.0.1:9090, a free port when that is
	// taken).
	addr, err := metricsAddr(getenv)
	if err != nil {
		return err
	}
	var metricsLn net.Listener
	metricsTaken := false
	if getenv("METRICS_ADDR") == "" {
		if metricsLn, metricsTaken, err = listenOrFree(f.metricsDefault, f.metricsDefault); err != nil {
			return fmt.Errorf("dev: metrics on %s: %w (set METRICS_ADDR)", f.metricsDefault, err)
		}
		addr = f.metricsDefault
	}
	metricsAt, stopEndpoints, err := tel.serveEndpoints(ctx, addr, getenv("METRICS_ADDR") != "", metricsLn, w, log)
	if err != nil {
		return err
	}
	defer stopEndpoints()
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Shutdown()
	stopScheduler, err := startScheduler(ctx, f, config{redis: redisOpt}, log)
	if err != nil {
		return err
	}
	defer stopScheduler()
	stopOutbox, err := startOutbox(ctx, getenv("OUTBOX_DATABASE_URL"), client, tel.reg, getenv, log)
	if err != nil {
		return err
	}
	defer stopOutbox()

	mon, err := monitor.New(monitor.Config{RedisOpt: redisOpt, LoopbackNoAuth: true, DeadLetters: dl, Logger: log.With("component", "monitor")})
	if err != nil {
		return err
	}
	defer mon.Close()
	ln, monitorTaken, err := listenOrFree(f.monitorAddr, f.monitorDefault)
	if err != nil {
		return fmt.Errorf("dev: monitor on %s: %w (choose another with -monitor-addr)", f.monitorAddr, err)
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		ln.Close()
		return fmt.Errorf("dev: -monitor-addr %s is not a loopback address; the dev monitor has no login", f.monitorAddr)
	}
	monitorDone := make(chan error, 1)
	go func() { monitorDone <- mon.Serve(ctx, ln) }()
	defer func() { <-monitorDone }()

	fmt.Fprint(stdout, devBanner)
	fmt.Fprintf(stdout, "\n  monitor: http://%s/monitor/   (API: http://%s/api/v1, no login on loopback)", ln.Addr(), ln.Addr())
	if monitorTaken {
		fmt.Fprintf(stdout, "\n           %s is taken: the monitor is on http://%s instead (or choose with -monitor-addr)", f.monitorDefault, ln.Addr())
	}
	if metricsAt != "" {
		fmt.Fprintf(stdout, "\n  metrics: http://%s/metrics   (and /healthz, /readyz)", metricsAt)
	}
	if metricsTaken {
		fmt.Fprintf(stdout, "\n           %s is taken: the metrics are on http://%s instead (or choose with METRICS_ADDR)", f.metricsDefault, metricsAt)
	}
	fmt.Fprintf(stdout, "\n  export REDIS_URL=%s   # for jobctl and the monitor\n", store.URL())
	fmt.Fprintf(stdout, "  export DEAD_LETTER_PATH=%s   # the dead-letter ledger, for jobctl dlq (deleted on exit)\n\n", dl.Path())
	log.Warn("dev mode: in-memory store, nothing survives a restart", "redis_url", store.URL())

	if f.demo {
		// The demo's partners, as the registry's would be: listed by
		// jobctl partners list and GET /api/v1/partners.
		st, err := partner.NewState(partner.StateConfig{Redis: client.Redis()})
		if err != nil {
			return err
		}
		if err := st.Known(ctx, devmode.DemoPartners); err != nil {
			return fmt.Errorf("dev: record the demo's partners: %w", err)
		}
		go devmode.RunDemo(ctx, client, 2*time.Second, log)
	}
	<-ctx.Done()
	return nil
}
