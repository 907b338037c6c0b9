package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/scheduler"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// partners is the partner delivery of SPEC §10: the live registry, the
// per-partner state in Redis, the gated sender and the redelivery loop.
type partners struct {
	rc         redis.UniversalClient
	insp       *tasks.Inspector
	watcher    *partner.Watcher
	sender     *partner.Sender
	redelivery *partner.Redelivery
	log        *slog.Logger
	reload     chan os.Signal
	poll       time.Duration
}

// wrap wraps the sender's HTTP transport (tracing). The per-partner
// delivery figures, read from Redis for the whole fleet, are the monitor's
// (escrowjobs_partner_*), not every worker's.
func newPartners(ctx context.Context, cfg config, dl deadletter.Ledger, wrap func(http.RoundTripper) http.RoundTripper, log *slog.Logger) (*partners, error) {
	watcher, err := partner.NewWatcher(cfg.webhookFile, cfg.webhookAllowPrivate, log.With("component", "registry"))
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_ENDPOINTS_FILE: %w", err)
	}
	rc, ok := cfg.redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, errors.New("webhook: Redis option does not make a go-redis client")
	}
	alert := func(ctx context.Context, kind, partner, reason string) {
		if err := scheduler.PushNotice(ctx, rc, scheduler.Notice{Type: kind, Partner: partner, Reason: reason}); err != nil {
			log.Error("alert not queued", "type", kind, "partner", partner, "reason", reason, "error", err)
		}
	}
	state, err := partner.NewState(partner.StateConfig{
		Redis: rc, BreakerFailures: cfg.webhookBreakerFailures, BreakerProbe: cfg.webhookBreakerProbe,
		Lease: 2*cfg.webhookTimeout + 10*time.Second, Alert: alert,
	})
	if err != nil {
		rc.Close()
		return nil, err
	}
	insp := tasks.NewInspector(cfg.redis)
	rd, err := partner.NewRedelivery(partner.RedeliveryConfig{
		Redis: rc, DeadLetters: partner.LedgerDeadLetters{Desk: repair.NewDesk(insp, dl)}, State: state,
		Registry: watcher.Registry, Schedule: cfg.webhookSchedule, Alert: alert, Logger: log,
	})
	if err != nil {
		rc.Close()
		insp.Close()
		return nil, err
	}
	watcher.OnChange(func(reg *partner.Registry) { rd.RegistryChanged(context.WithoutCancel(ctx), reg) })
	sender := partner.NewSender(nil, partner.SenderOptions{
		AllowPrivateNetworks: cfg.webhookAllowPrivate, Timeout: cfg.webhookTimeout, Logger: log,
		Watcher: watcher, State: state, WrapTransport: wrap,
	})
	p := &partners{rc: rc, insp: insp, watcher: watcher, sender: sender, redelivery: rd, log: log, reload: make(chan os.Signal, 1), poll: cfg.webhookReloadInterval}
	// SIGHUP re-reads the registry; registered at once so an early HUP
	// does not kill the process.
	signal.Notify(p.reload, syscall.SIGHUP)
	return p, nil
}

// run starts the registry watcher and the redelivery loop; stop ends them.
func (p *partners) run(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { p.watcher.Run(ctx, p.poll, p.reload) })
	wg.Go(func() { p.redelivery.Run(ctx) })
	return func() { cancel(); wg.Wait() }
}

func (p *partners) close() {
	signal.Stop(p.reload)
	p.insp.Close()
	p.rc.Close()
}
