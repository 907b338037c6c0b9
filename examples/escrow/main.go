// Command escrow is a small escrow API on PostgreSQL. Every transition is
// a flow (package flows) added through the transactional outbox: the
// escrow's change and its flow commit in one transaction, so a Redis outage
// at that moment loses nothing. The escrowjobs server, run with
// OUTBOX_DATABASE_URL set to the same database and REDIS_URL to the same
// Redis, relays the flows to Redis and runs their steps.
//
//	DATABASE_URL=postgres://… REDIS_URL=redis://127.0.0.1:6379 go run ./examples/escrow
//
// Routes (JSON):
//
//	POST /escrows               {id, buyerEmail, sellerEmail, amount, currency, paymentIntentId, partnerId?} → 201
//	POST /escrows/{id}/release
//	POST /escrows/{id}/refund   {reason?}
//	POST /escrows/{id}/dispute  {disputeId, reason}
//	POST /escrows/{id}/resolve  {resolution, sellerAmount?}
//	GET  /escrows/{id}          → {id, status, …, flows: [{id, name, state, failedStep, error}]}
//
// # Flows
//
// Each transition is the flow named after it with the escrow ID as key
// ("release:esc-123"). The money step runs first; the e-mails and the
// partner webhook that say money moved run after it succeeded, so a
// capture or refund that fails for good (an authorization that expired,
// say) tells no customer and no partner anything; the flow's on-failure
// step writes an audit record (escrow.release_failed, escrow.refund_failed,
// escrow.resolve_failed).
//
//	fund     payment-confirmed e-mail to the buyer, webhook funded, audit
//	release  capture → release e-mail to the seller, webhook released; audit
//	refund   refund (a PaymentIntent never captured is canceled instead,
//	         which releases the hold) → refund e-mail to the buyer, webhook
//	         refunded; audit
//	dispute  dispute e-mails to both parties, webhook disputed, audit
//	resolve  release_to_seller: capture; refund_to_buyer: refund or cancel;
//	         split: capture of sellerAmount (required, 0 < sellerAmount <
//	         amount; the capture releases the rest of the hold)
//	         → notify_dispute_resolved (its e-mails and webhook); audit
//
// # Statuses
//
// The status GET reports says where the money is:
//
//	funded                       created; the buyer's money is held
//	releasing, refunding,        the transition committed; its money step
//	resolving                    has not completed yet (the flow may not
//	                             have started, or the step runs or retries)
//	released, refunded,          the money step completed (read from the
//	resolved                     flow, then stored: the row keeps it)
//	release_failed,              the money step failed for good (or its
//	refund_failed,               dead letter was discarded): no money moved;
//	resolve_failed               requeueing the dead letter repairs it
//	                             (the status goes back to releasing, …)
//	disputed                     a dispute is open; the money is held
//
// A transition the current status does not allow is 409: release, refund
// and dispute need funded, resolve needs disputed, so nothing but a
// repair moves an escrow whose money is moving or whose move failed. A
// paymentIntentId that another escrow has is 409 naming the field; bad
// input is 400 with the fields that are wrong.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/postgres"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// DefaultAddr is where the API listens unless ESCROW_ADDR says otherwise.
const DefaultAddr = "127.0.0.1:8090"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "escrow:", err)
		}
		os.Exit(1)
	}
}

// config is the example's configuration, from the environment.
type config struct {
	databaseURL string
	redis       asynq.RedisConnOpt
	addr        string
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{databaseURL: strings.TrimSpace(getenv("DATABASE_URL")), addr: strings.TrimSpace(getenv("ESCROW_ADDR"))}
	if c.addr == "" {
		c.addr = DefaultAddr
	}
	if c.databaseURL == "" {
		return c, errors.New("DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/escrow?sslmode=disable)")
	}
	u := strings.TrimSpace(getenv("REDIS_URL"))
	if u == "" {
		return c, errors.New("REDIS_URL is not set (the jobs' Redis, where the escrows' flows are read; e.g. redis://127.0.0.1:6379)")
	}
	opt, err := asynq.ParseRedisURI(u)
	if err != nil {
		return c, fmt.Errorf("REDIS_URL: %w", err)
	}
	c.redis = opt
	return c, nil
}

// run is the whole program; tests call it in-process with ESCROW_ADDR
// 127.0.0.1:0 and read the address from the "listening on" line.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("escrow", flag.ContinueOnError)
	fs.SetOutput(stdout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (configure with DATABASE_URL and ESCROW_ADDR)", fs.Args())
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil))

	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	db, err := postgres.Open(octx, cfg.databaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer db.Close()
	if err := Migrate(octx, db.Pool()); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("ESCROW_ADDR %s: %w", cfg.addr, err)
	}
	in := tasks.NewInspector(cfg.redis)
	defer in.Close()
	store := flows.NewStore(in.Redis(), in)
	srv := &http.Server{Handler: NewService(db.Pool(), store, log).Handler(), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "escrow API listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	return srv.Shutdown(sctx)
}
