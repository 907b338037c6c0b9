package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/peertest"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// A small run prints every figure for both sides, with a ratio and a
// verdict where there is a target. Nothing here asserts a timing.
func TestRunPrintsEveryFigure(t *testing.T) {
	url := peertest.Redis(t)
	var stdout, stderr bytes.Buffer
	args := []string{"-flush", "-n", "300", "-c", "4", "-k", "8", "-loops", "2,1", "-latency-n", "50", "-rounds", "2",
		"-idle-window", "300ms", "-idle-samples", "5", "-raw-idle-samples", "2", "-idle-raw-polls", "600ms,50ms", "-idle-gap", "5ms",
		"-progress=false", "-v"}
	if err := run(context.Background(), args, env(map[string]string{"REDIS_URL": url}), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	number := `[0-9]+(\.[0-9]+)?`
	dur := number + ` (ns|µs|ms|s)`
	k := number + `k`
	spread := func(v string) string { return v + ` \(` + v + `–` + v + `\)` }
	rows := []struct{ figure, value, ratio, target string }{
		{"enqueue throughput, 4 goroutines, jobs/s", spread(k), spread(number), `≥ 0\.8× raw +(yes|NO)`},
		{"enqueue latency p50, 4 goroutines", dur, number, `-`},
		{"enqueue latency p99, 4 goroutines", dur, number, `-`},
		{"enqueue latency p999, 4 goroutines", dur, number, `-`},
		{"enqueue latency p50, 1 goroutine", dur, number, `-`},
		{"enqueue latency p99, 1 goroutine", dur, number, `≤ 2× raw +(yes|NO)`},
		{"enqueue latency p999, 1 goroutine", dur, number, `-`},
		{"Redis memory per pending job", `-?` + number + ` B`, `-?` + number, `≤ 1024 B +(yes|NO)`},
		{"processing throughput, k=8, 2 loops, jobs/s", spread(k), spread(number), `≥ 1\.2× raw +(yes|NO)`},
		{"processing throughput, k=8, 1 loops, jobs/s", spread(k), spread(number), `≥ 1\.2× raw +(yes|NO)`},
		{"enqueue CPU per job (this process), 4 goroutines, µs", spread(number), spread(number), `-`},
		{"processing CPU per job (this process), 2 loops, µs", spread(number), spread(number), `-`},
		{"processing CPU per job (this process), 1 loops, µs", spread(number), spread(number), `-`},
	}
	for _, r := range rows {
		// figure, ours, raw, ratio, target and verdict.
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(r.figure) + ` +` + r.value + ` +` + r.value + ` +` + r.ratio + ` +` + r.target + ` *$`)
		if !re.MatchString(out) {
			t.Errorf("no row %q with both figures, ratio and %s", r.figure, r.target)
		}
	}
	// The idle sides, in this order: wake-up at each -loops value, the
	// worker polling, then each raw poll.
	idle := []struct{ side, target string }{
		{"escrowjobs, wake-up, 2 loops", `≤ 20 /s, p50 ≤ 2\.00 ms, p99 ≤ 6\.00 ms +(yes|NO)`},
		{"escrowjobs, wake-up, 1 loops", `≤ 20 /s, p50 ≤ 2\.00 ms, p99 ≤ 6\.00 ms +(yes|NO)`},
		{"escrowjobs, polling every 10ms, 2 loops", `≤ 400 /s, p50 ≤ 10\.00 ms, p99 ≤ 30\.00 ms +(yes|NO)`},
		{"raw asynq, TaskCheckInterval 600ms", `- +-`},
		{"raw asynq, TaskCheckInterval 50ms", `- +-`},
	}
	at := 0
	for _, r := range idle {
		samples := "5"
		if strings.Contains(r.side, "600ms") {
			samples = "2"
		}
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(r.side) + ` +` + number + ` /s +` + dur + ` +` + dur + ` +` + samples + ` +` + r.target + ` *$`)
		loc := re.FindStringIndex(out)
		if loc == nil {
			t.Errorf("no idle row %q with commands/s, p50, p99, %s samples and %s", r.side, samples, r.target)
			continue
		}
		if loc[0] < at {
			t.Errorf("idle row %q out of order", r.side)
		}
		at = loc[0]
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(r.side) + `: ([a-z]+ ` + number + `|none)`).MatchString(out) {
			t.Errorf("no idle commands by name for %q", r.side)
		}
	}
	for _, want := range []string{"machine: ", "Redis 7", "raw asynq: asynq.Client + TaskID", "load: 1-minute load average "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(stderr.String(), "Redis commands per job") {
		t.Errorf("-v printed no commands per job on stderr:\n%s", stderr.String())
	}
}

// Progress bars repaint a line several times a second; into a file or a
// CI log (anything but a terminal) loadgen draws none, even though
// -progress is on by default. The run lasts long enough (>1 s per side)
// for a bar to show if it were drawn.
func TestNoProgressRepaintsWhenStderrIsNotATerminal(t *testing.T) {
	url := peertest.Redis(t)
	file, err := os.Create(filepath.Join(t.TempDir(), "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var buf bytes.Buffer
	for _, c := range []struct {
		name   string
		stderr io.Writer
		read   func() string
	}{
		{"file", file, func() string { b, _ := os.ReadFile(file.Name()); return string(b) }},
		{"pipe-like buffer", &buf, buf.String},
	} {
		var stdout bytes.Buffer
		args := []string{"-flush", "-throughput=false", "-idle-window", "100ms", "-idle-samples", "25", "-idle-gap", "60ms",
			"-idle-polling=false", "-idle-raw-polls", "50ms"}
		if err := run(context.Background(), args, env(map[string]string{"REDIS_URL": url}), &stdout, c.stderr); err != nil {
			t.Fatalf("%s: run: %v\nstderr:\n%s", c.name, err, c.read())
		}
		if got := c.read(); strings.Contains(got, "\r") || strings.Contains(got, "[===") {
			t.Errorf("%s: got progress repaints on stderr, want none:\n%q", c.name, got)
		}
		if !strings.Contains(stdout.String(), "escrowjobs, wake-up, 4 loops") {
			t.Errorf("%s: the run printed no figures:\n%s", c.name, stdout.String())
		}
	}
	if isTerminal(file) || isTerminal(&buf) {
		t.Errorf("isTerminal: got true for a file or a buffer, want false")
	}
}

// Without -flush loadgen refuses a database that holds anything, and
// leaves it alone.
func TestRefusesNonEmptyDatabaseWithoutFlush(t *testing.T) {
	url := peertest.Redis(t)
	rc := peertest.RedisClient(t, url)
	ctx := context.Background()
	if err := rc.Set(ctx, "precious", "data", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"-n", "10"}, env(map[string]string{"REDIS_URL": url}), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-flush") || !strings.Contains(err.Error(), "1 keys") {
		t.Fatalf("got %v, want a refusal naming -flush and the 1 key", err)
	}
	if v, err := rc.Get(ctx, "precious").Result(); err != nil || v != "data" {
		t.Errorf("got %q, %v after the refusal; want the key untouched", v, err)
	}
}

func TestBadUsageIsAnError(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no redis", []string{"-flush"}, nil, "REDIS_URL"},
		{"zero jobs", []string{"-n", "0"}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}, "-n must be positive"},
		{"bad loops", []string{"-loops", "4,x"}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}, "positive integer"},
		{"stray argument", []string{"now"}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}, "unexpected arguments"},
		{"bullmq without flush", []string{"-bullmq", "bench/bullmq"}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, "-bullmq needs -flush"},
		{"bullmq not installed", []string{"-flush", "-bullmq", "no/such/dir"}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, "no bench.js"},
		{"bullmq on another database", []string{"-flush", "-bullmq", "../../bench/bullmq"}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/15"}, "names database 15"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), c.args, env(c.env), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), c.want) {
			t.Errorf("%s: got %v (stderr %q), want an error about %q", c.name, err, stderr.String(), c.want)
		}
	}
}
