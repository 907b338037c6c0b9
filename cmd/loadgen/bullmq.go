package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bullmqProbe runs the pinned BullMQ probe (bench/bullmq in the
// repository, installed with npm ci into dir) against the Redis under test,
// one `node bench.js <phase>` process per phase.
type bullmqProbe struct {
	node    string // the node executable
	dir     string // the installed probe: bench.js and node_modules/
	port    string // REDIS_PORT: the probe connects to 127.0.0.1, database 0
	version string // BullMQ's version, from node_modules/bullmq/package.json
}

// newBullMQProbe checks that dir holds an installed probe, that node runs,
// and that the Redis of redisURL is one the probe can reach.
func newBullMQProbe(dir, redisURL string, lookPath func(string) (string, error)) (*bullmqProbe, error) {
	port, err := probePort(redisURL)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "bench.js")); err != nil {
		return nil, fmt.Errorf("-bullmq %s: no bench.js: give the directory of an installed copy of bench/bullmq (scripts/bench makes one): %w", dir, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "bullmq", "package.json"))
	if err != nil {
		return nil, fmt.Errorf("-bullmq %s: BullMQ is not installed there: run npm ci --no-audit --no-fund in it: %w", dir, err)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil || pkg.Version == "" {
		return nil, fmt.Errorf("-bullmq %s: node_modules/bullmq/package.json has no version; reinstall with npm ci --no-audit --no-fund", dir)
	}
	node, err := lookPath("node")
	if err != nil {
		return nil, fmt.Errorf("-bullmq: node is not on PATH: install it with apt-get install -y nodejs npm: %w", err)
	}
	return &bullmqProbe{node: node, dir: dir, port: port, version: pkg.Version}, nil
}

// probePort is the port of redisURL, which must be the form the probe
// connects to: 127.0.0.1 (or localhost), database 0, no password.
func probePort(redisURL string) (string, error) {
	u, err := url.Parse(redisURL)
	if err != nil {
		return "", fmt.Errorf("-bullmq: the Redis URL does not parse: %w", err)
	}
	bad := func(why string) error {
		return fmt.Errorf("-bullmq: the probe connects to 127.0.0.1:PORT, database 0, without a password; "+
			"use -redis-url redis://127.0.0.1:PORT/0 (this URL %s)", why)
	}
	if u.Scheme != "redis" {
		return "", bad("is not redis://")
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
		return "", bad("names another host")
	}
	if _, ok := u.User.Password(); ok {
		return "", bad("has a password")
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		return "", bad("names database " + db)
	}
	if n, err := strconv.Atoi(u.Port()); err != nil || n <= 0 || n > 65535 {
		return "", bad("has no port")
	}
	return u.Port(), nil
}

// bullmqResult is the JSON line one probe phase prints: the fields loadgen
// reads (the probe prints more).
type bullmqResult struct {
	System     string  `json:"system"`
	Op         string  `json:"op"`
	N          int     `json:"n"`
	Done       int     `json:"done"`      // add: jobs added
	Errors     int     `json:"errors"`    // add, latency: failed adds
	Completed  int     `json:"completed"` // work: jobs completed
	Failed     int     `json:"failed"`    // work: jobs failed
	JobsPerS   float64 `json:"jobs_per_s"`
	P50us      float64 `json:"p50_us"` // add: per call
	P99us      float64 `json:"p99_us"`
	ClientCPUs float64 `json:"client_cpu_s"` // CPU seconds of the probe process over the phase
	RedisCPUs  float64 `json:"redis_cpu_s"`  // of Redis (INFO cpu)
	TimedOut   bool    `json:"timed_out"`
	FirstError string  `json:"first_error"`
	// latency: the idle Worker's Redis load, then enqueue → processor start
	Produced     int                `json:"produced"`
	Missing      int                `json:"missing"`
	Dup          int                `json:"dup"`
	LatCount     int                `json:"lat_count"`
	LatP50ms     float64            `json:"lat_p50_ms"`
	LatP99ms     float64            `json:"lat_p99_ms"`
	IdleCmdsPerS float64            `json:"idle_cmds_per_s"`
	IdleByName   map[string]float64 `json:"idle_cmds_by_name_per_s"`
}

// parseBullMQ reads the last line of a probe's output as its result for op
// and want jobs, and refuses one that did not do all of them: a timeout,
// failed adds or jobs, jobs missing or seen twice.
func parseBullMQ(out []byte, op string, want int) (bullmqResult, error) {
	var r bullmqResult
	line := lastLine(out)
	if line == "" {
		return r, fmt.Errorf("bullmq %s: the probe printed nothing", op)
	}
	dec := json.NewDecoder(strings.NewReader(line))
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("bullmq %s: the probe's last line is not its JSON result (%q): %w", op, truncate(line, 120), err)
	}
	if r.System != "bullmq" || r.Op != op {
		return r, fmt.Errorf("bullmq %s: the probe answered system %q op %q", op, r.System, r.Op)
	}
	var got int
	switch op {
	case "add":
		got = r.Done
	case "work":
		got = r.Completed
	case "latency":
		got = r.LatCount
	default:
		return r, fmt.Errorf("bullmq: unknown phase %q", op)
	}
	switch {
	case r.FirstError != "":
		return r, fmt.Errorf("bullmq %s: %d adds failed, the first with: %s", op, r.Errors, r.FirstError)
	case r.Errors > 0 || r.Failed > 0:
		return r, fmt.Errorf("bullmq %s: %d adds and %d jobs failed", op, r.Errors, r.Failed)
	case r.TimedOut:
		return r, fmt.Errorf("bullmq %s: timed out after %d of %d jobs", op, got, want)
	case r.Missing > 0 || r.Dup > 0:
		return r, fmt.Errorf("bullmq %s: %d jobs never reached the processor, %d reached it twice", op, r.Missing, r.Dup)
	case got < want:
		return r, fmt.Errorf("bullmq %s: %d of %d jobs", op, got, want)
	case r.JobsPerS < 0 || r.ClientCPUs < 0 || r.RedisCPUs < 0:
		return r, fmt.Errorf("bullmq %s: negative figures in %q", op, truncate(line, 120))
	}
	return r, nil
}

// lastLine is the last non-blank line of out, trimmed.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// run runs one phase, `node bench.js op args…`, and parses its result.
func (p *bullmqProbe) run(ctx context.Context, op string, want int, args ...string) (bullmqResult, error) {
	cmd := exec.CommandContext(ctx, p.node, append([]string{"bench.js", op}, args...)...)
	cmd.Dir = p.dir
	cmd.Env = append(cmd.Environ(), "REDIS_PORT="+p.port)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return bullmqResult{}, fmt.Errorf("bullmq %s: node bench.js: %w; its stderr: %s", op, err, truncate(strings.TrimSpace(stderr.String()), 2000))
	}
	return parseBullMQ(stdout.Bytes(), op, want)
}

// addArgs, workArgs and latencyArgs are the probe's arguments for one
// phase, mirroring loadgen's own settings.
func addArgs(n, callers int) []string {
	return []string{"-n", strconv.Itoa(n), "-c", strconv.Itoa(callers)}
}

func workArgs(n, concurrency int) []string {
	return []string{"-n", strconv.Itoa(n), "-concurrency", strconv.Itoa(concurrency)}
}

// latencyArgs: samples jobs from one producer at one every gap (loadgen
// enqueues its idle samples one at a time, gap apart on average) to a
// Worker at concurrency k, after idleSettle and an idle window of window.
func latencyArgs(samples, k int, gap, window time.Duration) []string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	return []string{"-n", strconv.Itoa(samples), "-rate", f(1 / gap.Seconds()), "-c", "1", "-concurrency", strconv.Itoa(k),
		"-idle", f(window.Seconds()), "-settle", f(idleSettle.Seconds())}
}

// bullmqRound is BullMQ's side of one throughput round: what
// enqueuePhase and process measure for the other two, from the probe.
func (b *bench) bullmqRound(ctx context.Context, label string) (enqueueFigures, procFigure, error) {
	var f enqueueFigures
	var pf procFigure
	c := b.cfg
	if err := b.adm.reset(ctx); err != nil {
		return f, pf, err
	}
	mem0, err := b.adm.usedMemory(ctx)
	if err != nil {
		return f, pf, err
	}
	par, err := b.bull.run(ctx, "add", c.n, addArgs(c.n, c.c)...)
	if err != nil {
		return f, pf, fmt.Errorf("%s: %w", label, err)
	}
	seq, err := b.bull.run(ctx, "add", c.latencyN, addArgs(c.latencyN, 1)...)
	if err != nil {
		return f, pf, fmt.Errorf("%s: %w", label, err)
	}
	mem1, err := b.adm.usedMemory(ctx)
	if err != nil {
		return f, pf, err
	}
	total := c.n + c.latencyN
	work, err := b.bull.run(ctx, "work", total, workArgs(total, c.k)...)
	if err != nil {
		return f, pf, fmt.Errorf("%s: %w", label, err)
	}
	perJob := func(secs float64, n int) float64 { return secs * 1e6 / float64(n) }
	us := func(x float64) time.Duration { return time.Duration(x * float64(time.Microsecond)) }
	f = enqueueFigures{
		rate: par.JobsPerS, par: [3]time.Duration{us(par.P50us), us(par.P99us)}, seq: [3]time.Duration{us(seq.P50us), us(seq.P99us)},
		memPerJob: float64(mem1-mem0) / float64(total), cpu: perJob(par.ClientCPUs, c.n), redisCPU: perJob(par.RedisCPUs, c.n),
	}
	pf = procFigure{rate: work.JobsPerS, cpu: perJob(work.ClientCPUs, total), redisCPU: perJob(work.RedisCPUs, total)}
	if c.verbose {
		fmt.Fprintf(b.stderr, "%s: enqueue %.0f jobs/s from %d callers; CPU per job: probe %.1f µs, Redis %.1f µs; 1 caller p50 %s p99 %s\n",
			label, f.rate, c.c, f.cpu, f.redisCPU, human(f.seq[0]), human(f.seq[1]))
		fmt.Fprintf(b.stderr, "%s: %.0f jobs/s at concurrency %d; CPU per job: probe %.1f µs, Redis %.1f µs\n", label, pf.rate, c.k, pf.cpu, pf.redisCPU)
	}
	return f, pf, nil
}

// bullmqIdleFigure is the probe's idle Worker: Redis commands/s over the
// idle window, then enqueue → processor start of jobs from a separate
// producer process.
type bullmqIdleFigure struct {
	cmdsPerSec float64
	cmds       string // by name, per second
	p50, p99   time.Duration
	samples    int
}

// bullmqIdle runs the probe's latency phase with loadgen's idle settings.
func (b *bench) bullmqIdle(ctx context.Context) (bullmqIdleFigure, error) {
	var f bullmqIdleFigure
	if err := b.adm.reset(ctx); err != nil {
		return f, err
	}
	c := b.cfg
	r, err := b.bull.run(ctx, "latency", c.idleSamples, latencyArgs(c.idleSamples, c.k, c.idleGap, c.idleWindow)...)
	if err != nil {
		return f, err
	}
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	return bullmqIdleFigure{cmdsPerSec: r.IdleCmdsPerS, cmds: byNamePerSecond(r.IdleByName), p50: ms(r.LatP50ms), p99: ms(r.LatP99ms), samples: r.LatCount}, nil
}

// byNamePerSecond formats the probe's idle commands by name per second,
// most frequent first (INFO, the readings, left out), as perSecond does
// loadgen's own.
func byNamePerSecond(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for k := range m {
		if k != "info" {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f", strings.ToLower(k), m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// bullmqSide is BullMQ's side of one throughput round, into rep.
func (b *bench) bullmqSide(ctx context.Context, rep *report, tag string) error {
	f, pf, err := b.bullmqRound(ctx, "BullMQ"+tag)
	if err != nil {
		return err
	}
	rep.bull = append(rep.bull, f)
	rep.bullProc = append(rep.bullProc, pf)
	return nil
}
