package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/internal/testenv"
	"github.com/redis/go-redis/v9"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// A small run prints every figure for both sides, with a ratio and a
// verdict where there is a target. Nothing here asserts a timing.
func TestRunPrintsEveryFigure(t *testing.T) {
	url := testenv.Redis(t)
	var stdout, stderr bytes.Buffer
	args := []string{"-flush", "-n", "300", "-c", "4", "-k", "8", "-loops", "2,1", "-latency-n", "50",
		"-idle-window", "300ms", "-idle-samples", "5", "-raw-idle-samples", "2", "-raw-poll", "50ms", "-idle-gap", "5ms",
		"-progress=false", "-v"}
	if err := run(context.Background(), args, env(map[string]string{"REDIS_URL": url}), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	number := `[0-9]+(\.[0-9]+)?`
	dur := number + ` (ns|µs|ms|s)`
	rows := []struct{ figure, value, target string }{
		{"enqueue throughput, 4 goroutines", number + ` jobs/s`, `≥ 0\.95× raw +(yes|NO)`},
		{"enqueue latency p50, 4 goroutines", dur, `-`},
		{"enqueue latency p99, 4 goroutines", dur, `-`},
		{"enqueue latency p999, 4 goroutines", dur, `-`},
		{"enqueue latency p50, 1 goroutine", dur, `-`},
		{"enqueue latency p99, 1 goroutine", dur, `≤ 2× raw +(yes|NO)`},
		{"enqueue latency p999, 1 goroutine", dur, `-`},
		{"Redis memory per pending job", `-?` + number + ` B`, `≤ 1024 B +(yes|NO)`},
		{"processing throughput, k=8, 2 loops", number + ` jobs/s`, `≥ 1\.2× raw +(yes|NO)`},
		{"processing throughput, k=8, 1 loops", number + ` jobs/s`, `≥ 1\.2× raw +(yes|NO)`},
		{"idle Redis commands/s, 2 loops", `-?` + number + ` /s`, `≤ 400 /s +(yes|NO)`},
		{"idle enqueue → handler start p50, 2 loops", dur, `≤ 10 ms +(yes|NO)`},
		{"idle enqueue → handler start p99, 2 loops", dur, `≤ 30 ms +(yes|NO)`},
		{"idle Redis commands/s, 1 loops", `-?` + number + ` /s`, `≤ 400 /s +(yes|NO)`},
		{"idle enqueue → handler start p50, 1 loops", dur, `≤ 10 ms +(yes|NO)`},
		{"idle enqueue → handler start p99, 1 loops", dur, `≤ 30 ms +(yes|NO)`},
	}
	for _, r := range rows {
		// figure, ours, raw, ratio, target and verdict.
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(r.figure) + ` +` + r.value + ` +` + r.value + ` +(` + number + `|-) +` + r.target + ` *$`)
		if !re.MatchString(out) {
			t.Errorf("no row %q with both figures, ratio and %s", r.figure, r.target)
		}
	}
	for _, want := range []string{"machine: ", "Redis 7", "raw asynq: asynq.Client + TaskID"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(stderr.String(), "Redis commands per job") {
		t.Errorf("-v printed no commands per job on stderr:\n%s", stderr.String())
	}
}

// Without -flush loadgen refuses a database that holds anything, and
// leaves it alone.
func TestRefusesNonEmptyDatabaseWithoutFlush(t *testing.T) {
	url := testenv.Redis(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Set(ctx, "precious", "data", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"-n", "10"}, env(map[string]string{"REDIS_URL": url}), &stdout, &stderr)
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
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), c.args, env(c.env), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), c.want) {
			t.Errorf("%s: got %v (stderr %q), want an error about %q", c.name, err, stderr.String(), c.want)
		}
	}
}
