package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/escrowjobs/escrowjobs/audit"
	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/postgres"
	"github.com/escrowjobs/escrowjobs/scheduler"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
)

// closers runs cleanups in reverse order.
type closers []func()

func (c *closers) add(f func()) { *c = append(*c, f) }
func (c closers) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// runProduction wires the production adapters from the environment.
func runProduction(ctx context.Context, f flags, getenv func(string) string, log *slog.Logger) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	var cleanup closers
	defer cleanup.run()
	tel, err := newTelemetry(ctx, getenv)
	if err != nil {
		return err
	}
	cleanup.add(func() { tel.close(log) })

	deps := handlers.Deps{Logger: log}
	var dl deadletter.Ledger
	var dbs = map[string]*postgres.DB{}
	openDB := func(url string) (*postgres.DB, error) {
		if db, ok := dbs[url]; ok {
			return db, nil
		}
		octx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		db, err := postgres.Open(octx, url)
		if err != nil {
			return nil, err
		}
		if err := db.Migrate(octx); err != nil {
			db.Close()
			return nil, err
		}
		cleanup.add(db.Close)
		dbs[url] = db
		return db, nil
	}

	if cfg.deadLetterDB != "" {
		db, err := openDB(cfg.deadLetterDB)
		if err != nil {
			return fmt.Errorf("DEAD_LETTER_DATABASE_URL: %w", err)
		}
		// A database write that fails or hangs goes to the spill file
		// (DEAD_LETTER_PATH) and moves to the database once it answers.
		spill, err := deadletter.OpenFile(cfg.deadLetterPath)
		if err != nil {
			return fmt.Errorf("DEAD_LETTER_PATH (spill file of the dead-letter database): %w", err)
		}
		cleanup.add(func() { spill.Close() })
		fb := &deadletter.Fallback{Primary: db.DeadLetters(), Spill: spill, Timeout: deadletter.DefaultWriteTimeout, Logger: log.With("component", "deadletter")}
		fctx, stop := context.WithCancel(ctx)
		flushed := make(chan struct{})
		go func() { defer close(flushed); fb.Run(fctx, spillFlushInterval) }()
		cleanup.add(func() { stop(); <-flushed })
		dl = fb
	} else {
		file, err := deadletter.OpenFile(cfg.deadLetterPath)
		if err != nil {
			return fmt.Errorf("DEAD_LETTER_PATH: %w", err)
		}
		cleanup.add(func() { file.Close() })
		dl = file
	}
	// jobctl and the monitor must read this same ledger: say which it is.
	log.Info("dead-letter ledger", "ledger", cfg.ledgerName)
	pctx, stopPurge := context.WithCancel(ctx)
	purged := make(chan struct{})
	go func() { defer close(purged); purgeLoop(pctx, dl, cfg.deadLetterRetention, log) }()
	cleanup.add(func() { stopPurge(); <-purged })

	if cfg.auditDB != "" {
		db, err := openDB(cfg.auditDB)
		if err != nil {
			return fmt.Errorf("AUDIT_DATABASE_URL: %w", err)
		}
		deps.Audit = db.AuditSink()
	} else {
		file, err := audit.OpenFile(cfg.auditPath)
		if err != nil {
			return fmt.Errorf("AUDIT_LOG_PATH: %w", err)
		}
		cleanup.add(func() { file.Close() })
		deps.Audit = file
	}

	partners, err := newPartners(ctx, cfg, dl, func(rt http.RoundTripper) http.RoundTripper { return observe.Transport(rt, tel.tp, "webhook") }, log)
	if err != nil {
		return err
	}
	cleanup.add(partners.close)
	deps.Sender = partners.sender

	if deps.Mailer, err = newMailer(cfg, tel, log); err != nil {
		return err
	}
	if deps.Payments, err = newPayments(cfg, tel, log); err != nil {
		return err
	}

	client := tasks.NewClient(cfg.redis, append(cfg.clientOpts, tasks.WithTracerProvider(tel.tp))...)
	cleanup.add(func() { client.Close() })
	deps.Enqueuer = client
	mux, err := handlers.NewServeMux(deps)
	if err != nil {
		return err
	}
	inspector := tasks.NewInspector(cfg.redis)
	cleanup.add(func() { inspector.Close() })
	// Flows: the middleware advances a flow when its step's job succeeds
	// (inside the worker's retry gate), the worker tells the store of
	// dead-lettered steps; flow state is kept as long as dead letters.
	fl := flows.NewStore(client.Redis(), inspector, flows.Retention(cfg.deadLetterRetention),
		flows.WithClient(client), flows.Logger(log.With("component", "flows")))
	mux.Use(fl.Middleware(client)) // the flow metrics are the monitor's (fl.Collector reads the fleet's)
	w, err := worker.New(worker.Config{
		Redis: cfg.redis, Concurrency: cfg.concurrency, FetchLoops: cfg.fetchLoops, PollInterval: cfg.pollInterval,
		FallbackPoll: cfg.fallbackPoll, DisableWake: cfg.disableWake,
		ShutdownTimeout: cfg.shutdownTimeout, DeadLetters: dl, Logger: log, Archived: partners.redelivery.Archived,
		DoneMarkersPath: cfg.doneMarkersPath, Flows: fl,
	}, observe.NewObserver(tel.jobs, tel.tp).Wrap(mux))
	if err != nil {
		return err
	}
	_, stopEndpoints, err := tel.serveEndpoints(ctx, cfg.metricsAddr, getenv("METRICS_ADDR") != "", nil, w, log)
	if err != nil {
		return err
	}
	cleanup.add(stopEndpoints)
	if err := w.Start(); err != nil {
		return err
	}
	stopPartners := partners.run(ctx)
	defer stopPartners()
	stopScheduler, err := startScheduler(ctx, f, cfg, log)
	if err != nil {
		w.Shutdown()
		return err
	}
	stopOutbox, err := startOutbox(ctx, cfg.outboxDB, client, tel.reg, getenv, log)
	if err != nil {
		stopScheduler()
		w.Shutdown()
		return err
	}
	<-ctx.Done()
	log.Info("shutting down: no new jobs; in-flight jobs get the shutdown timeout", "timeout", cfg.shutdownTimeout.String())
	stopOutbox()
	stopScheduler()
	w.Shutdown()
	return nil
}

// startScheduler runs the periodic jobs of SCHEDULE_FILE and the dead-letter
// watchdog until stop is called. Every server process may run one: periodic
// jobs are deduplicated by period, watchdog alerts by minute.
func startScheduler(ctx context.Context, f flags, cfg config, log *slog.Logger) (stop func(), err error) {
	if f.noScheduler {
		log.Info("scheduler disabled in this process (-no-scheduler)")
		return func() {}, nil
	}
	var entries []scheduler.Entry
	if cfg.scheduleFile != "" {
		if entries, err = scheduler.LoadEntries(cfg.scheduleFile); err != nil {
			return nil, fmt.Errorf("SCHEDULE_FILE: %w", err)
		}
	}
	s, err := scheduler.New(scheduler.Config{
		Redis: cfg.redis, ClientOptions: cfg.clientOpts, Logger: log.With("component", "scheduler"), Entries: entries,
		AlertURL: cfg.alertURL, AlertSecret: cfg.alertToken, WatchdogInterval: cfg.watchdogInterval,
	})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(sctx) }()
	return func() { cancel(); <-done }, nil
}

// spillFlushInterval is how often the spill file is moved to the database.
const spillFlushInterval = 30 * time.Second

// purgeInterval is how often resolved dead letters past retention go.
const purgeInterval = time.Hour

// purgeLoop deletes requeued and discarded dead letters resolved longer
// than retention ago, on start and then hourly; open ones are never
// purged. Every server process may run it (a purge is idempotent).
func purgeLoop(ctx context.Context, l deadletter.Ledger, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(purgeInterval)
	defer t.Stop()
	for {
		n, err := l.Purge(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("dead-letter retention: purge failed; next try in an hour", "error", err.Error())
		case n > 0:
			log.Info("dead-letter retention: purged resolved dead letters", "purged", n, "retention", retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
