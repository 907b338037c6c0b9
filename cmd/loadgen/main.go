// Command loadgen measures escrowjobs against raw asynq on the same Redis,
// in the same run, and prints each figure side by side with the ratio and
// the target of SPEC section 7.
//
//	loadgen -flush [-n 50000] [-c 50] [-k 50] [-loops 4] [-rounds 3] [-redis-url URL]
//
// Phases (each starts with FLUSHDB when -flush is given):
//
//  1. escrowjobs: N jobs, a round-robin mix of the nine types with typical
//     payloads, built with the typed constructors (validate + encode +
//     defaults) and enqueued with tasks.Client from C goroutines, then
//     -latency-n more from one goroutine: throughput, latency p50/p99/p999,
//     and Redis memory per pending job (INFO memory used_memory delta /
//     jobs pending). A worker.Worker with no-op adapters, concurrency K and
//     -loops fetch loops then drains them: processing throughput, from the
//     first handler start to the last handler return.
//
//  2. raw asynq: the same with asynq.Client, the same payload bytes and an
//     equally long TaskID (queue "default"), drained by one asynq.Server at
//     concurrency K with a no-op handler.
//
//  3. idle: the worker (then the raw Server) running with nothing to do:
//     Redis commands/s (INFO stats total_commands_processed delta; it counts
//     the commands inside Lua scripts too, and every client of that Redis),
//     then jobs enqueued one at a time with random gaps: enqueue → handler
//     start p50/p99.
//
//  4. flows (-flows): -flow-n three-step flows (a capture, then the seller's
//     e-mail and the partner's webhook after it) started with flows.Start
//     from C goroutines, then the worker as cmd/server runs it (the flows'
//     middleware, no-op adapters) drains them; against the same three jobs
//     per escrow enqueued at once and drained by the same worker: steps/s
//     and Redis commands per step (INFO commandstats) of each side.
//
//  5. flow latency (-flow-latency): on that worker idle, the release flow
//     (capture, then e-mail and webhook after it, and an audit) from
//     flows.Start to its last step's handler start, against one job's
//     Enqueue → handler start; with -outbox-db also from the commit of
//     flows.Add (and of outbox.Add for one job) through the outbox relay
//     cmd/server runs. The paths alternate sample by sample.
//
//  6. BullMQ (-bullmq DIR, DIR an installed copy of bench/bullmq): in
//     every round of phases 1 and 2, and after phase 3, the pinned BullMQ
//     probe runs the same on the same Redis (node bench.js add, add from
//     one caller, work, latency, one process per phase, its JSON line
//     read), and loadgen prints one table of escrowjobs, raw asynq and
//     BullMQ with the ratios to both (-detail adds the tables above).
//     scripts/bench installs the probe and a private Redis and runs this.
//
// Phases 1 and 2 (and 6), and the two sides of phase 4, alternate -rounds times;
// phase 5 runs -rounds rounds; each figure is the median. -loops takes a
// list (1,2,4,8): the worker's processing and phase 3 run once per value
// (phases 4 and 5 use the first). -v adds, per phase, the CPU time per job
// of this process and of Redis, and Redis commands per job by name.
//
// Redis must be an empty database, or -flush must be given: loadgen writes
// jobs, and FLUSHDB destroys every key in the database. Timings are of this
// machine at this moment; the ratios compare two things measured in the
// same run on the same Redis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/cmd/internal/cmdenv"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func main() { cmdenv.Main("loadgen", run) }

// config is every setting of one run.
type config struct {
	redisURL       string
	n              int
	c              int
	k              int
	loops          intList
	flush          bool
	latencyN       int
	perEscrow      int
	rounds         int
	throughput     bool
	idle           bool
	idleWindow     time.Duration
	idleSamples    int
	rawIdleSamples int
	idleGap        time.Duration
	pollInterval   time.Duration
	rawPoll        time.Duration
	fallbackPoll   time.Duration
	idlePolling    bool
	idleRawPolls   durList
	flows          bool
	flowLatency    bool
	flowN          int
	flowSamples    int
	outboxDB       string
	cpuprofile     string
	progress       bool
	verbose        bool
	bullmq         string // the installed BullMQ probe's directory
	detail         bool
}

// intList is a comma-separated list of positive integers.
type intList []int

func (l *intList) String() string { return joinList(*l, strconv.Itoa) }

func (l *intList) Set(v string) error { return setList(l, v, "integer", strconv.Atoi) }

// durList is a comma-separated list of positive durations.
type durList []time.Duration

func (l *durList) String() string { return joinList(*l, time.Duration.String) }

func (l *durList) Set(v string) error { return setList(l, v, "duration", time.ParseDuration) }

// joinList is the flag text of a list: its values, comma-separated.
func joinList[T any](l []T, format func(T) string) string {
	s := make([]string, len(l))
	for i, v := range l {
		s[i] = format(v)
	}
	return strings.Join(s, ",")
}

// setList parses v, a comma-separated list of positive values of one kind,
// with parse into *l, which it leaves alone when a value is not one.
func setList[L ~[]T, T int | time.Duration](l *L, v, kind string, parse func(string) (T, error)) error {
	var out L
	for _, f := range strings.Split(v, ",") {
		x, err := parse(strings.TrimSpace(f))
		if err != nil || x <= 0 {
			return fmt.Errorf("%q is not a positive %s", f, kind)
		}
		out = append(out, x)
	}
	*l = out
	return nil
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{loops: intList{worker.DefaultFetchLoops}, idleRawPolls: durList{time.Second, 10 * time.Millisecond}}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.redisURL, "redis-url", "", "Redis to measure against (default $REDIS_URL)")
	fs.IntVar(&cfg.n, "n", 50000, "jobs per throughput phase (enqueued from -c goroutines)")
	fs.IntVar(&cfg.c, "c", 50, "enqueue goroutines")
	fs.IntVar(&cfg.k, "k", worker.DefaultConcurrency, "processing concurrency (total, for the worker and for the raw Server)")
	fs.Var(&cfg.loops, "loops", "worker fetch loops; a list (1,2,4,8) repeats the processing and idle phases for each")
	fs.BoolVar(&cfg.flush, "flush", false, "FLUSHDB before each phase (destroys every key in the database; required unless it is empty)")
	fs.IntVar(&cfg.latencyN, "latency-n", 10000, "jobs enqueued from one goroutine for the latency figures")
	fs.IntVar(&cfg.perEscrow, "jobs-per-escrow", 1, "consecutive jobs (of different types, 1-9) that share one escrow; 1, every job its own escrow, is the per-escrow history index's worst case for memory")
	fs.IntVar(&cfg.rounds, "rounds", 5, "repeat the enqueue and processing phases, alternating escrowjobs and raw asynq; each figure is the median over rounds, with its range")
	fs.BoolVar(&cfg.throughput, "throughput", true, "run the enqueue and processing phases")
	fs.BoolVar(&cfg.idle, "idle", true, "run the idle phase (commands/s and enqueue → handler start)")
	fs.DurationVar(&cfg.idleWindow, "idle-window", 5*time.Second, "how long idle Redis commands are counted")
	fs.IntVar(&cfg.idleSamples, "idle-samples", 300, "jobs enqueued one at a time for enqueue → handler start (worker)")
	fs.IntVar(&cfg.rawIdleSamples, "raw-idle-samples", 20, "the same for a raw Server polling every 500 ms or slower (at asynq's default 1 s each takes ~1.5 s)")
	fs.DurationVar(&cfg.idleGap, "idle-gap", 30*time.Millisecond, "mean pause between idle samples, uniform 0.5-1.5×; at least the poll interval of the side measured, so samples land at random points of its polling")
	fs.DurationVar(&cfg.pollInterval, "poll", 0, "worker.Config.PollInterval (0: the worker's default)")
	fs.DurationVar(&cfg.rawPoll, "raw-poll", 0, "raw Server TaskCheckInterval in the processing phase (0: asynq's default, 1 s)")
	fs.DurationVar(&cfg.fallbackPoll, "fallback-poll", 0, "worker.Config.FallbackPoll (0: the worker's default)")
	fs.BoolVar(&cfg.idlePolling, "idle-polling", true, "also measure the worker idle with wake-ups off (DisableWake)")
	fs.Var(&cfg.idleRawPolls, "idle-raw-polls", "raw Server TaskCheckIntervals measured idle, a list (default 1s,10ms: asynq's default and a fast poll)")
	fs.BoolVar(&cfg.flows, "flows", false, "run the flow processing phase: -flow-n three-step flows (one step, two after it) against the same jobs enqueued at once, same worker")
	fs.BoolVar(&cfg.flowLatency, "flow-latency", false, "run the flow latency phase: release flow start → last step's handler start against one job's, idle worker (and outbox relay with -outbox-db)")
	fs.IntVar(&cfg.flowN, "flow-n", 5000, "flows per side and round of the flow processing phase (three jobs each)")
	fs.IntVar(&cfg.flowSamples, "flow-samples", 200, "samples per path and round of the flow latency phase")
	fs.StringVar(&cfg.outboxDB, "outbox-db", "", "PostgreSQL URL for the flow latency phase's outbox paths (flows.Add and outbox.Add, relayed as cmd/server does); its escrowjobs_outbox table is created if missing and must be empty")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.BoolVar(&cfg.progress, "progress", true, "show progress bars on stderr when it is a terminal (never in a file or CI log)")
	fs.BoolVar(&cfg.verbose, "v", false, "also print each phase's figures and Redis commands per job on stderr")
	fs.StringVar(&cfg.bullmq, "bullmq", "", "directory of an installed copy of bench/bullmq (npm ci): add BullMQ's column to every round and the idle phase, and print one table of the three (needs -flush and a Redis at 127.0.0.1, database 0)")
	fs.BoolVar(&cfg.detail, "detail", false, "with -bullmq, also print the escrowjobs-vs-raw tables that loadgen prints without it")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q (flags only; see -h)", fs.Args())
	}
	if cfg.redisURL == "" {
		cfg.redisURL = getenv("REDIS_URL")
	}
	if cfg.redisURL == "" {
		return cfg, errors.New("no Redis: set REDIS_URL or -redis-url (e.g. redis://127.0.0.1:6379/15)")
	}
	for name, v := range map[string]int{"-n": cfg.n, "-c": cfg.c, "-k": cfg.k, "-latency-n": cfg.latencyN, "-rounds": cfg.rounds, "-idle-samples": cfg.idleSamples, "-raw-idle-samples": cfg.rawIdleSamples, "-flow-n": cfg.flowN, "-flow-samples": cfg.flowSamples} {
		if v <= 0 {
			return cfg, fmt.Errorf("%s must be positive, got %d", name, v)
		}
	}
	if cfg.perEscrow < 1 || cfg.perEscrow > len(tasks.Types()) {
		return cfg, fmt.Errorf("-jobs-per-escrow must be 1 to %d (the types, so one escrow's jobs have different IDs), got %d", len(tasks.Types()), cfg.perEscrow)
	}
	if !cfg.throughput && !cfg.idle && !cfg.flows && !cfg.flowLatency {
		return cfg, errors.New("-throughput=false and -idle=false without -flows or -flow-latency leave nothing to measure")
	}
	if cfg.bullmq != "" && !cfg.flush {
		return cfg, errors.New("-bullmq needs -flush: BullMQ's phases start from an empty database, like the others")
	}
	if cfg.idleWindow <= 0 || cfg.idleGap <= 0 {
		return cfg, errors.New("-idle-window and -idle-gap must be positive")
	}
	return cfg, nil
}

// run is the whole program; the test calls it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	var bull *bullmqProbe
	if cfg.bullmq != "" {
		if bull, err = newBullMQProbe(cfg.bullmq, cfg.redisURL, exec.LookPath); err != nil {
			return err
		}
	}
	opt, err := tasks.RedisFromEnv(func(k string) string {
		if k == "REDIS_URL" {
			return cfg.redisURL
		}
		return ""
	})
	if err != nil {
		return err
	}
	rc, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return fmt.Errorf("unsupported Redis option %T", opt)
	}
	defer rc.Close()
	adm := admin{rc: rc, flush: cfg.flush}
	version, err := adm.check(ctx)
	if err != nil {
		return err
	}
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cfg.progress = cfg.progress && isTerminal(stderr)
	b := &bench{cfg: cfg, opt: opt, adm: adm, stderr: stderr}
	rep := report{cfg: cfg, redisVersion: version, redisURL: tasks.RedactURL(cfg.redisURL)}
	if bull != nil {
		b.bull, rep.bullVersion = bull, bull.version
	}
	if cfg.throughput {
		if err := b.throughput(ctx, &rep); err != nil {
			return err
		}
	}
	if cfg.idle {
		if err := b.idlePhases(ctx, &rep); err != nil {
			return err
		}
	}
	if cfg.flows {
		if err := b.flowPhase(ctx, &rep); err != nil {
			return err
		}
	}
	if cfg.flowLatency {
		if err := b.flowLatencyPhase(ctx, &rep); err != nil {
			return err
		}
	}
	rep.print(stdout)
	return nil
}

// newRawServer is the raw asynq baseline: one Server at concurrency k,
// asynq's defaults otherwise (queue "default", TaskCheckInterval 1 s unless
// -raw-poll).
func newRawServer(opt asynq.RedisConnOpt, k int, poll time.Duration, stderr io.Writer) *asynq.Server {
	return asynq.NewServer(opt, asynq.Config{Concurrency: k, TaskCheckInterval: poll, LogLevel: asynq.ErrorLevel, Logger: asynqLog{stderr}})
}

// asynqLog prints asynq's errors (the only level it is asked to log).
type asynqLog struct{ w io.Writer }

func (asynqLog) Debug(...any)        {}
func (asynqLog) Info(...any)         {}
func (asynqLog) Warn(...any)         {}
func (l asynqLog) Error(args ...any) { fmt.Fprintln(l.w, append([]any{"asynq:"}, args...)...) }
func (l asynqLog) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
