package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { os.Exit(peertest.RunMain(m)) }

// A tiny run of the flow phases against a real Redis and PostgreSQL: the
// flows and their jobs all run (a step that never ran fails the run), and
// every figure is printed with both sides, a ratio and a verdict where
// there is a target. Nothing here asserts a timing.
func TestFlowPhasesPrintEveryFigure(t *testing.T) {
	url := peertest.Redis(t)
	db := peertest.Postgres(t)
	var stdout, stderr bytes.Buffer
	args := []string{"-flush", "-throughput=false", "-idle=false", "-flows", "-flow-latency", "-outbox-db", db,
		"-flow-n", "6", "-flow-samples", "3", "-rounds", "2", "-c", "3", "-k", "4", "-idle-gap", "2ms", "-progress=false", "-v"}
	if err := run(context.Background(), args, env(map[string]string{"REDIS_URL": url}), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	number := `[0-9]+(\.[0-9]+)?`
	dur := number + ` (ns|µs|ms|s)`
	spread := func(v string) string { return v + ` \(` + v + `–` + v + `\)` }
	for _, r := range []struct{ figure, value, ratio, target string }{
		{"processing throughput, steps/s", spread(number + `k`), spread(number), `≥ 0\.8× jobs +(yes|NO)`},
		{"processing CPU per step (this process), µs", spread(number), spread(number), `-`},
		{"Redis commands per step, start/enqueue", spread(number), spread(number), `-`},
		{"Redis commands per step, processing", spread(number), spread(number), `-`},
		{"Redis commands per step, total", spread(number), spread(number), `-`},
	} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(r.figure) + ` +` + r.value + ` +` + r.value + ` +` + r.ratio + ` +` + r.target + ` *$`)
		if !re.MatchString(out) {
			t.Errorf("no flow row %q with both figures, ratio and %s", r.figure, r.target)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^extra Redis commands per step, flows − jobs \(scripts' own included\): -?` + number + ` \(`),
		regexp.MustCompile(`(?m)^  flows: [a-z]+ [0-9.]+.*; [a-z]+ [0-9.]+`),
		regexp.MustCompile(`(?m)^  jobs: [a-z]+ [0-9.]+`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s", want)
		}
	}
	// Four paths, in this order; each flow's p99 against its job's.
	at := 0
	for _, r := range []struct{ path, tail string }{
		{"one job, Enqueue → handler start", `- +- +-`},
		{"release flow, flows.Start → last step's handler start", spread(number) + ` +≤ 3× one job's +(yes|NO)`},
		{"one job, outbox commit → handler start", `- +- +-`},
		{"release flow, flows.Add commit → last step's handler start", spread(number) + ` +≤ 3× one job's +(yes|NO)`},
	} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(r.path) + ` +` + spread(dur) + ` +` + spread(dur) + ` +6 +` + r.tail + ` *$`)
		loc := re.FindStringIndex(out)
		if loc == nil {
			t.Errorf("no latency row %q with p50, p99, 6 samples and %s", r.path, r.tail)
			continue
		}
		if loc[0] < at {
			t.Errorf("latency row %q out of order", r.path)
		}
		at = loc[0]
	}
	if !strings.Contains(stderr.String(), "Redis commands per step") {
		t.Errorf("-v printed no commands per step on stderr:\n%s", stderr.String())
	}
}

// The latency phase's relay would move any row already in the outbox
// table into the flushed Redis: loadgen refuses such a database and
// leaves the row alone.
func TestFlowLatencyRefusesAnOutboxWithRows(t *testing.T) {
	url := peertest.Redis(t)
	db := peertest.Postgres(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := outbox.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	capture, _, _, _ := escrowSteps("esc-precious")
	task, err := tasks.New(capture)
	if err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, task) }); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"-flush", "-throughput=false", "-idle=false", "-flow-latency", "-outbox-db", db, "-progress=false"},
		env(map[string]string{"REDIS_URL": url}), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "holds 1 rows") {
		t.Fatalf("got %v, want a refusal of the table's 1 row", err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+outbox.Table).Scan(&n); err != nil || n != 1 {
		t.Errorf("got %d rows, %v after the refusal; want the row untouched", n, err)
	}
}
