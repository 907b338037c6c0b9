// Command server is the escrowjobs worker process: the asynq servers that
// run the nine side-effect jobs, and the scheduler (periodic jobs and the
// dead-letter watchdog).
//
//	server            production: configuration from the environment
//	server -dev       no configuration: an embedded in-memory store, log
//	                  adapters and the monitor on http://127.0.0.1:8080/monitor/
//	server -dev -demo the same, plus a stream of sample escrow events
//
// SIGINT/SIGTERM stop taking work, let in-flight jobs finish within
// WORKER_SHUTDOWN_TIMEOUT and return unfinished ones to the queue.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/escrowjobs/escrowjobs/cmd/internal/cmdenv"
	"github.com/escrowjobs/escrowjobs/cmd/internal/logbridge"
	"github.com/escrowjobs/escrowjobs/observe"
)

func main() {
	// Libraries that log through the standard log package or go-redis's
	// logger get the same lines (JSON, or text on a terminal) as run's own
	// logger.
	logbridge.Install(cmdenv.NewLogger(os.Stderr, os.Getenv("LOG_LEVEL")))
	cmdenv.Main("escrowjobs server", run)
}

type flags struct {
	dev          bool
	devRedisAddr string
	demo         bool
	noScheduler  bool
	monitorAddr  string
	// monitorDefault and metricsDefault are the addresses -dev moves off
	// to a free port when they are taken: the -monitor-addr default and
	// DefaultMetricsAddr (tests hold ports of their own as defaults).
	monitorDefault, metricsDefault string
}

// DefaultDevMonitorAddr is where the monitor of -dev listens by default.
const DefaultDevMonitorAddr = "127.0.0.1:8080"

// run is the whole program; tests call it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f := flags{monitorDefault: DefaultDevMonitorAddr, metricsDefault: DefaultMetricsAddr}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.dev, "dev", false, "development mode: embedded in-memory store, log adapters, monitor without auth on loopback; nothing persists")
	fs.StringVar(&f.devRedisAddr, "dev-redis-addr", "127.0.0.1:6379", "with -dev: address of the embedded store (a free port is used when 6379 is taken)")
	fs.BoolVar(&f.demo, "demo", false, "with -dev: enqueue a stream of sample escrow events, some failing")
	fs.BoolVar(&f.noScheduler, "no-scheduler", false, "do not run the scheduler (periodic jobs, dead-letter watchdog) in this process")
	fs.StringVar(&f.monitorAddr, "monitor-addr", DefaultDevMonitorAddr, "with -dev: where the monitor listens (loopback only; a free port is used when 8080 is taken)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags only; see -h)", fs.Args())
	}
	if f.demo && !f.dev {
		return errors.New("-demo needs -dev: it enqueues sample events that fail on purpose")
	}
	if f.dev {
		if err := checkDevRedisAddr(f.devRedisAddr); err != nil {
			return err
		}
	}
	log := cmdenv.NewLogger(stderr, getenv("LOG_LEVEL"))
	log = slog.New(observe.LogHandler(log.Handler())) // trace_id and span_id within a job
	if f.dev {
		return runDev(ctx, f, getenv, stdout, log)
	}
	return runProduction(ctx, f, getenv, log)
}
