// Command escrow is a small escrow API on PostgreSQL that adds its side
// effects through the transactional outbox: each state change and its jobs
// (capture, refund, e-mails, partner webhook, audit) commit in one
// transaction, so a Redis outage at that moment loses nothing. The
// escrowjobs server, run with OUTBOX_DATABASE_URL set to the same database,
// relays the jobs to Redis and runs them.
//
//	DATABASE_URL=postgres://… go run ./examples/escrow
//
// Routes (JSON):
//
//	POST /escrows               {id, buyerEmail, sellerEmail, amount, currency, paymentIntentId, partnerId?} → 201
//	POST /escrows/{id}/release
//	POST /escrows/{id}/refund   {reason?}
//	POST /escrows/{id}/dispute  {disputeId, reason}
//	POST /escrows/{id}/resolve  {resolution}
//	GET  /escrows/{id}
//
// A transition the current status does not allow is 409; bad input is 400
// with the fields that are wrong.
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

	"github.com/escrowjobs/escrowjobs/postgres"
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
	srv := &http.Server{Handler: NewService(db.Pool(), log).Handler(), ReadHeaderTimeout: 5 * time.Second}
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
