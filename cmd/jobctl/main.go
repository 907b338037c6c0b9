// Command jobctl is the operator CLI of the escrow background jobs: it
// enqueues a job, shows a job's state, the queue counts and the dead letters
// (archived jobs), and requeues a dead letter with its full retry budget.
//
// Usage:
//
//	jobctl [--json] [-v] <command> [flags] [args]
//
//	enqueue <type> --payload JSON|@file|- [--dedupe-key K] [--in 10s]
//	status <id>
//	stats
//	dlq list [--limit N] [--cursor C] [--type T] [--queue Q] [--transaction-id X]
//	         [--partner-id P] [--state open|requeued|discarded] [--since 1h] [--until T]
//	dlq show <id>
//	dlq requeue <id> [--reason R] [--actor A]
//	dlq requeue --type T --since 2h [--queue Q] [--partner-id P] [--transaction-id X] [--until T] [--dry-run]
//	dlq discard <id> --reason R [--actor A]
//	partners list
//	partners enable <id> [--actor A]
//	partners disable <id> [--reason R] [--actor A]
//	history <transactionId>
//	flow show <id>
//	flow list [--state running|completed|failed|cancelled] [--name N] [--limit N] [--cursor C]
//	help
//
// The payload is inline JSON, @file to read it from a file, or - to read it
// from standard input. It is validated before anything reaches Redis; a bad
// payload fails with one line naming every bad field. A duplicate enqueue
// (a job with the same ID is pending, scheduled, retrying, archived or
// completed within the hour) prints the existing job's ID, says so on
// standard error and exits 0.
//
// --json, before or after the command, prints the HTTP API's JSON shapes:
// {"id": …} (plus "duplicate": true) for enqueue, the job for status, the
// list of queue counts for stats, {"items": […], "next": cursor|null} for
// dlq list, the dead letter for dlq show, requeue and discard,
// {"matched", "requeued", "ids"} for a bulk requeue, the flow (GET
// /api/v1/flows/{id}) for flow show and {"items": [flows…], "next":
// cursor|null} for flow list. Without it the output is a table or "key:
// value" lines.
//
// Dead letters come from the ledger (DEAD_LETTER_DATABASE_URL, else
// AUDIT_DATABASE_URL, else the file DEAD_LETTER_PATH), the one the workers
// record into; dlq list and show need no Redis. jobctl takes no default
// ledger: without one of these variables a command that reads dead letters
// fails naming them, and a DEAD_LETTER_PATH that does not exist is an error
// (jobctl never creates a ledger). dlq list, and with -v every command
// that reads the ledger, prints "ledger: postgres (host:port/db)" or
// "ledger: file /path" on standard error. --actor defaults to the OS user.
// E-mail addresses are masked in everything shown.
//
// Redis is REDIS_URL (redis://, rediss://, redis-sentinel://) or
// REDIS_CLUSTER_ADDRS (with REDIS_USERNAME, REDIS_PASSWORD). An unreachable Redis is a
// one-line error within about three seconds.
//
// Exit status: 0 on success (a duplicate enqueue included), 1 on an error,
// 2 on a usage error. Errors are one line on standard error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// inspectTimeout bounds every read or repair through the Inspector (the
// enqueue client has its own deadline, tasks.EnqueueTimeout).
const inspectTimeout = 3 * time.Second

func main() {
	// go-redis logs every failed dial to os.Stderr; jobctl reports the
	// failure itself, in one line.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// quietLogger drops go-redis's internal log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// run is jobctl without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{ctx: ctx, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	err := c.dispatch(args)
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "jobctl: %s (run 'jobctl help' for usage)\n", oneLine(redact(ue.msg, getenv)))
		return 2
	}
	fmt.Fprintf(stderr, "jobctl: %s\n", oneLine(redact(err.Error(), getenv)))
	return 1
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

type cli struct {
	ctx            context.Context
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	json           bool
	verbose        bool // -v: say which ledger a command reads
	announceLedger bool // dlq list: say which ledger it read, -v or not
}

// config is jobctl's configuration, read from the environment.
type config struct {
	redis      asynq.RedisConnOpt
	clientOpts []tasks.ClientOption // REDIS_WAIT_REPLICAS
}

func (c *cli) config() (config, error) {
	r, err := tasks.RedisFromEnv(c.getenv)
	if err != nil {
		return config{}, err
	}
	opts, err := tasks.ClientOptionsFromEnv(c.getenv)
	if err != nil {
		return config{}, err
	}
	return config{redis: r, clientOpts: opts}, nil
}

func (c *cli) dispatch(args []string) error {
	global := c.flags("jobctl")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c.usage()
		}
		return usagef("%v", err)
	}
	args = global.Args()
	if len(args) == 0 {
		return usagef("no command")
	}
	err := c.command(args[0], args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return c.usage()
	}
	return err
}

func (c *cli) command(cmd string, rest []string) error {
	cmds := []command{{"enqueue", c.enqueue}, {"status", c.status}, {"stats", c.stats}, {"dlq", c.dlq},
		{"partners", c.partners}, {"history", c.history}, {"flow", c.flow}, {"help", func([]string) error { return c.usage() }}}
	if run := pick(cmds, cmd); run != nil {
		return run(rest)
	}
	return usagef("unknown command %q: want %s", cmd, names(cmds))
}

// command is one word of the command line and what runs it with the
// arguments after that word.
type command struct {
	name string
	run  func(args []string) error
}

// pick is the run of the command named name, or nil.
func pick(cmds []command, name string) func([]string) error {
	for _, cmd := range cmds {
		if cmd.name == name {
			return cmd.run
		}
	}
	return nil
}

// names lists the command names for a usage error: "list, show or discard".
func names(cmds []command) string {
	s := make([]string, len(cmds))
	for i, cmd := range cmds {
		s[i] = cmd.name
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// subcommand runs the subcommand of group (dlq, partners) that rest names;
// "help" (or -h, --help) prints the usage.
func (c *cli) subcommand(group string, rest []string, cmds []command) error {
	if len(rest) == 0 {
		return usagef("%s: want a subcommand: %s", group, names(cmds))
	}
	switch rest[0] {
	case "help", "-h", "-help", "--help":
		return c.usage()
	}
	if run := pick(cmds, rest[0]); run != nil {
		return run(rest[1:])
	}
	return usagef("%s: unknown subcommand %q: want %s", group, rest[0], names(cmds))
}

// flags is a flag set for one command, with the global --json.
func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.BoolVar(&c.json, "json", c.json, "print JSON in the HTTP API's shapes")
	fs.BoolVar(&c.verbose, "v", c.verbose, "say on standard error which dead-letter ledger is read")
	return fs
}

// parse parses flags and positional arguments in any order ("status ID
// --json" as well as "status --json ID"); "--" ends the flags. It returns
// the positional arguments, exactly want of them (any number when want is
// negative).
func (c *cli) parse(fs *flag.FlagSet, args []string, want int, names string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case want < 0:
	case len(pos) < want:
		return nil, usagef("%s: missing %s", fs.Name(), names)
	case len(pos) > want && want == 0:
		return nil, usagef("%s: takes no arguments, got %q", fs.Name(), strings.Join(pos, " "))
	case len(pos) > want:
		return nil, usagef("%s: want only %s, got extra %q", fs.Name(), names, strings.Join(pos[want:], " "))
	}
	return pos, nil
}

func (c *cli) usage() error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, `jobctl operates the escrow background jobs (asynq on Redis).

Usage:
  jobctl [--json] [-v] <command> [flags] [args]

Commands:
  enqueue <type> --payload JSON|@file|- [--dedupe-key K] [--in 10s]
    	validate and enqueue a job; prints its ID (a duplicate prints the existing ID)
  status <id>	one job: state, attempts, last error, next run
  stats	job counts per queue
  dlq list [--limit N] [--cursor C] [filters] [--state S]
    	dead letters from the ledger, latest failure first (default 50)
  dlq show <id>	one dead letter: error, payload (masked), fate
  dlq requeue <id> [--reason R] [--actor A]
    	run a dead letter again with its full retry budget, same job ID
  dlq requeue [filters] [--dry-run] [--reason R] [--actor A]
    	requeue every open dead letter matching the filters
  dlq discard <id> --reason R [--actor A]
    	resolve a dead letter without running it again
  partners list	webhook partners: state (healthy, open, disabled), failures, last success, waiting
  partners enable <id> [--actor A]	turn a partner back on and redeliver what waited
  partners disable <id> [--reason R] [--actor A]	turn a partner off: its deliveries become dead letters
  history <transactionId>	every job of one escrow, oldest first, dead letters included, grouped under its flow
  flow show <id>	one flow (release:esc-123): state, its steps in dependency order with state, attempts, last error
  flow list [--state S] [--name N] [--limit N] [--cursor C]
    	flows, most recently created first (default 50, at most 500); --state running, completed, failed or cancelled
  help	this text

Flags:
  --json	JSON in the HTTP API's shapes; before or after the command
  -v	say on standard error which dead-letter ledger is read (dlq list always does)
  --payload	inline JSON, @file to read a file, - to read standard input
  --dedupe-key	replaces the type's default dedupe key; the job ID is <type>:<key>
  --in	delay the first attempt (Go duration: 90s, 10m, 2h)
  filters	--type T --queue Q --transaction-id X --partner-id P --since 1h --until RFC3339
  --actor	who is recorded in the ledger (default: the OS user)

Job types:
`)
	for _, typ := range tasks.Types() {
		fmt.Fprintf(tw, "  %s\t(%s queue)\n", typ.Name, typ.Queue)
	}
	fmt.Fprint(tw, `
Environment:
  REDIS_URL	redis://[user][:password@]host:port/db, rediss://…, redis-sentinel://…
  REDIS_CLUSTER_ADDRS	host:port,host:port of a Redis Cluster (instead of REDIS_URL)
  REDIS_USERNAME	Redis ACL user for REDIS_CLUSTER_ADDRS or the master behind redis-sentinel://
  REDIS_PASSWORD	password for REDIS_CLUSTER_ADDRS or the master behind redis-sentinel://
  DEAD_LETTER_DATABASE_URL	the dead-letter ledger in PostgreSQL (else AUDIT_DATABASE_URL)
  DEAD_LETTER_PATH	the workers' file ledger without a database (no default: one of the two is required)

Exit status: 0 ok (a duplicate enqueue too), 1 error, 2 usage error.
`)
	return tw.Flush()
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), " ")
}

// redact hides the Redis passwords of the environment in s.
func redact(s string, getenv func(string) string) string {
	var secrets []string
	if u, err := url.Parse(strings.TrimSpace(getenv("REDIS_URL"))); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	secrets = append(secrets, getenv("REDIS_PASSWORD"))
	for _, p := range secrets {
		if len(p) >= 3 {
			s = strings.ReplaceAll(s, p, "xxxxx")
		}
	}
	return s
}
