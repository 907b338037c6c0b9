// Command monitor serves the operator's window on the escrow jobs: the
// asynqmon web UI under /monitor/ and the operator console under
// /console/ (HTTP Basic auth), the JSON admin API
// under /api/v1 (bearer token), /healthz and /metrics (unauthenticated).
//
//	monitor                     production: configuration from the environment
//	monitor -loopback-no-auth   no credentials needed; listens on 127.0.0.1 only
//
// Environment:
//
//	REDIS_URL / REDIS_CLUSTER_ADDRS   the queues' Redis (required)
//	MONITOR_ADDR                      listen address (default :8080; -addr overrides)
//	MONITOR_USERNAME                  Basic-auth user of /monitor/
//	MONITOR_PASSWORD                  Basic-auth password (at least 12 characters)
//	JOB_PROCESSOR_SECRET_TOKEN        bearer token of /api/v1 (at least 32 characters)
//	MONITOR_READ_ONLY=true            the UI cannot change anything (-read-only)
//	MONITOR_LOOPBACK_NO_AUTH=true     as -loopback-no-auth
//	DEAD_LETTER_DATABASE_URL          the dead-letter ledger in PostgreSQL (else AUDIT_DATABASE_URL)
//	DEAD_LETTER_PATH                  the file ledger without a database (default dead-letters.jsonl)
//	LOG_LEVEL                         debug, info (default), warn, error
//
// Without the credentials it refuses to start, naming each missing
// variable, unless told to serve loopback only. It prints
// "monitor listening on http://<addr>" once it accepts connections, and
// shuts down gracefully on SIGINT/SIGTERM. Its start log line
// ("monitor: serving") names the dead-letter ledger it reads (PostgreSQL
// database and host, or the file), as the console's footer does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/cmd/internal/cmdenv"
	"github.com/escrowjobs/escrowjobs/cmd/internal/ledgerenv"
	"github.com/escrowjobs/escrowjobs/cmd/internal/logbridge"
	"github.com/escrowjobs/escrowjobs/console"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func main() {
	// asynqmon and net/http log through the standard log package: make
	// those lines JSON like the rest.
	logbridge.Install(cmdenv.NewLogger(os.Stderr, os.Getenv("LOG_LEVEL")))
	// go-redis logs every failed dial; /healthz and the request log report
	// an unreachable Redis instead.
	redis.SetLogger(quietLogger{})
	cmdenv.Main("escrowjobs monitor", run)
}

// quietLogger drops go-redis's internal log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// config is the monitor's configuration: flags over the environment.
type config struct {
	addr     string
	loopback bool
	monitor  monitor.Config
	ledger   ledgerenv.Config
}

// loadConfig reads flags and environment. Every error names its variable.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	var errs []error
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "listen address (overrides MONITOR_ADDR; default :8080)")
	loopback := fs.Bool("loopback-no-auth", false, "serve loopback clients only (listen on 127.0.0.1), without the credentials that are not set")
	readOnly := fs.Bool("read-only", false, "the UI cannot change anything (as MONITOR_READ_ONLY=true)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q (flags only; see -h)", fs.Args())
	}
	c.loopback = *loopback || cmdenv.Bool(getenv, "MONITOR_LOOPBACK_NO_AUTH", &errs)
	c.monitor.ReadOnly = *readOnly || cmdenv.Bool(getenv, "MONITOR_READ_ONLY", &errs)
	c.monitor.LoopbackNoAuth = c.loopback
	c.monitor.Username = getenv("MONITOR_USERNAME")
	c.monitor.Password = getenv("MONITOR_PASSWORD")
	c.monitor.APIToken = getenv("JOB_PROCESSOR_SECRET_TOKEN") // not trimmed: Validate refuses surrounding whitespace

	addrVar := "MONITOR_ADDR"
	c.addr = getenv("MONITOR_ADDR")
	if *addr != "" {
		c.addr, addrVar = *addr, "-addr"
	}
	if c.addr == "" {
		c.addr = ":8080"
	}
	if a, err := listenAddr(c.addr, c.loopback); err != nil {
		errs = append(errs, fmt.Errorf("%s %q: %w", addrVar, c.addr, err))
	} else {
		c.addr = a
	}
	r, err := tasks.RedisFromEnv(getenv)
	if err != nil {
		errs = append(errs, errors.New(redactURLs(err.Error())))
	}
	c.monitor.RedisOpt = r
	if c.ledger, err = ledgerenv.Load(getenv); err != nil {
		errs = append(errs, err)
	}
	if c.monitor.ClientOptions, err = tasks.ClientOptionsFromEnv(getenv); err != nil {
		errs = append(errs, err)
	}
	check := c.monitor
	if check.RedisOpt == nil {
		check.RedisOpt = asynq.RedisClientOpt{} // reported above
	}
	if err := check.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}

var urlUserinfo = regexp.MustCompile(`([a-z-]+://)[^@/\s"]*@`)

// redactURLs hides the user and password of any URL in s, also in a URL
// too broken to parse.
func redactURLs(s string) string { return urlUserinfo.ReplaceAllString(s, "${1}xxxxx@") }

// listenAddr checks addr; in loopback mode an address without a host
// becomes 127.0.0.1, and any other host than a loopback one is an error.
func listenAddr(addr string, loopback bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("want host:port or :port: %v", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if !loopback {
		return addr, nil
	}
	switch ip := net.ParseIP(host); {
	case host == "" || strings.EqualFold(host, "localhost"):
		return net.JoinHostPort("127.0.0.1", port), nil
	case ip != nil && ip.IsLoopback():
		return addr, nil
	}
	return "", errors.New("without authentication (-loopback-no-auth, MONITOR_LOOPBACK_NO_AUTH) the monitor listens on a loopback address only, e.g. 127.0.0.1:8080")
}

// run is the whole program; tests call it in-process with "-addr
// 127.0.0.1:0" and read the bound address from the "monitor listening on
// http://…" line on stdout. It returns nil after a graceful shutdown on ctx.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := cmdenv.NewLogger(stderr, getenv("LOG_LEVEL"))
	cfg.monitor.Logger = log
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	store, err := cfg.ledger.Open(octx)
	cancel()
	if err != nil {
		return err
	}
	defer store.Close()
	cfg.monitor.DeadLetters = store.Ledger
	m, err := monitor.New(cfg.monitor)
	if err != nil {
		return err
	}
	defer m.Close()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx, ln) }()

	url := "http://" + ln.Addr().String()
	mode := []any{"addr", ln.Addr().String(), "read_only", cfg.monitor.ReadOnly, "loopback_no_auth", cfg.loopback, "ledger", m.LedgerName()}
	if cfg.loopback && (cfg.monitor.Username == "" || cfg.monitor.APIToken == "") {
		log.Warn("monitor: serving loopback clients without authentication", mode...)
	} else {
		log.Info("monitor: serving", mode...)
	}
	fmt.Fprintf(stdout, "monitor listening on %s (UI %s%s/, console %s%s/, API %s/api/v1; dead letters: %s)\n",
		url, url, monitor.RootPath, url, console.Root, url, m.LedgerName())

	if err := <-served; err != nil {
		return err
	}
	log.Info("monitor: stopped")
	return nil
}
