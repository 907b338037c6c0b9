package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

// compareReport is a report of three rounds with round figures, BullMQ's
// included, and the idle and flow phases.
func compareReport() *report {
	enq := func(rate float64, p50, p99 time.Duration, mem, cpu, rcpu float64) enqueueFigures {
		return enqueueFigures{rate: rate, seq: [3]time.Duration{p50, p99}, memPerJob: mem, cpu: cpu, redisCPU: rcpu}
	}
	us := time.Microsecond
	ms := time.Millisecond
	cfg := config{c: 50, k: 50, loops: intList{4}, idleWindow: 5 * time.Second, bullmq: "/probe"}
	return &report{
		cfg:         cfg,
		bullVersion: "6.7.0",
		ours:        []enqueueFigures{enq(30000, 100*us, 200*us, 1100, 40, 20), enq(27000, 110*us, 220*us, 1100, 44, 22), enq(33000, 90*us, 180*us, 1100, 36, 18)},
		raw:         []enqueueFigures{enq(60000, 50*us, 100*us, 800, 16, 10), enq(54000, 55*us, 110*us, 800, 16, 11), enq(60000, 45*us, 90*us, 800, 16, 9)},
		bull:        []enqueueFigures{enq(6000, 400*us, 2*ms, 880, 200, 80), enq(6000, 440*us, 2200*us, 880, 220, 88), enq(6000, 360*us, 1800*us, 880, 180, 72)},
		proc:        map[int][]procFigure{4: {{12000, 100, 50}, {11000, 110, 55}, {13000, 90, 45}}},
		rawProc:     []procFigure{{10000, 50, 40}, {10000, 55, 44}, {10000, 45, 36}},
		bullProc:    []procFigure{{4000, 280, 120}, {4000, 300, 130}, {4000, 260, 110}},
		idle: []idleFigure{
			{label: "escrowjobs, wake-up, 4 loops", side: idleWake, cmdsPerSec: 10, lat: latencies{900 * us, 1 * ms, 1100 * us, 2 * ms}},
			{label: "escrowjobs, polling every 10ms, 4 loops", side: idlePolling, cmdsPerSec: 150, lat: latencies{5 * ms, 6 * ms}},
			{label: "raw asynq, TaskCheckInterval 1s", side: idleRaw, cmdsPerSec: 6, lat: latencies{500 * ms, 1200 * ms}},
			{label: "raw asynq, TaskCheckInterval 10ms", side: idleRaw, cmdsPerSec: 280, lat: latencies{5 * ms, 14 * ms}},
		},
		bullIdle: &bullmqIdleFigure{cmdsPerSec: 1.6, cmds: "bzpopmin 0.2", p50: 1700 * us, p99: 3500 * us, samples: 300},
		flow:     []flowFigure{{rate: 500}, {rate: 400}, {rate: 600}},
		flowJobs: []flowFigure{{rate: 1000}, {rate: 1000}, {rate: 1000}},
	}
}

func TestCompareRows(t *testing.T) {
	want := []cmpRow{
		{"enqueue, 50 callers, jobs/s", "30.0k (27.0k–33.0k)", "60.0k (54.0k–60.0k)", "6.0k (6.0k–6.0k)", "0.50 (0.50–0.55)", "5.00 (4.50–5.50)", "≥ 0.8× raw, ≥ 1× BullMQ", "NO"},
		{"enqueue, 1 caller, p50", "100.0 µs (90.0–110.0)", "50.0 µs (45.0–55.0)", "400.0 µs (360.0–440.0)", "2.00 (2.00–2.00)", "0.25 (0.25–0.25)", "", "-"},
		{"enqueue, 1 caller, p99", "200.0 µs (180.0–220.0)", "100.0 µs (90.0–110.0)", "2.00 ms (1.80–2.20)", "2.00 (2.00–2.00)", "0.10 (0.10–0.10)", "≤ 2× raw", "yes"},
		{"enqueue CPU/job, client process, µs", "40.0 (36.0–44.0)", "16.0 (16.0–16.0)", "200.0 (180.0–220.0)", "2.50 (2.25–2.75)", "0.20 (0.20–0.20)", "", "-"},
		{"enqueue CPU/job, Redis, µs", "20.0 (18.0–22.0)", "10.0 (9.0–11.0)", "80.0 (72.0–88.0)", "2.00 (2.00–2.00)", "0.25 (0.25–0.25)", "", "-"},
		{"Redis memory per pending job", "1100 B (1100–1100)", "800 B (800–800)", "880 B (880–880)", "1.38 (1.38–1.38)", "1.25 (1.25–1.25)", "≤ 1024 B", "NO"},
		{"processing, concurrency 50, jobs/s", "12.0k (11.0k–13.0k)", "10.0k (10.0k–10.0k)", "4.0k (4.0k–4.0k)", "1.20 (1.10–1.30)", "3.00 (2.75–3.25)", "≥ 1.2× raw, ≥ 1× BullMQ", "yes"},
		{"processing CPU/job, client process, µs", "100.0 (90.0–110.0)", "50.0 (45.0–55.0)", "280.0 (260.0–300.0)", "2.00 (2.00–2.00)", "0.36 (0.35–0.37)", "", "-"},
		{"processing CPU/job, Redis, µs", "50.0 (45.0–55.0)", "40.0 (36.0–44.0)", "120.0 (110.0–130.0)", "1.25 (1.25–1.25)", "0.42 (0.41–0.42)", "", "-"},
		{"idle wake-up, enqueue → start, p50", "1.00 ms", "500.00 ms", "1.70 ms", "0.002", "0.59", "≤ 2 ms", "yes"},
		{"idle wake-up, enqueue → start, p99", "2.00 ms", "1.20 s", "3.50 ms", "0.0017", "0.57", "≤ 6 ms", "yes"},
		{"idle Redis commands/s", "10.0 /s", "6.0 /s", "1.6 /s", "1.67", "6.25", "≤ 20 /s", "yes"},
		{"flow ÷ the same 3 jobs, processing steps/s", "0.50 (0.40–0.60)", "-", "-", "-", "-", "≥ 0.8", "NO"},
	}
	got := compareReport().compareRows()
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d:\ngot  %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

// Without BullMQ's figures (its phases not run) the table shows "-" for
// them and judges escrowjobs against raw asynq alone.
func TestCompareRowsWithoutBullMQ(t *testing.T) {
	r := compareReport()
	r.bull, r.bullProc, r.bullIdle = nil, nil, nil
	for _, x := range r.compareRows() {
		if x.bull != "-" || x.vsBull != "-" {
			t.Errorf("%s: got BullMQ %q, ÷ BullMQ %q; want - and -", x.figure, x.bull, x.vsBull)
		}
		if x.figure == "processing, concurrency 50, jobs/s" && x.met != "yes" {
			t.Errorf("%s: got met %q, want yes (1.2× raw; BullMQ not measured)", x.figure, x.met)
		}
	}
}

// The printed table: a header naming BullMQ's version, every row in
// order with its eight columns, and the notes on what was measured; the
// escrowjobs-vs-raw tables only with -detail.
func TestPrintCompare(t *testing.T) {
	r := compareReport()
	var buf bytes.Buffer
	r.print(&buf)
	out := buf.String()
	header := regexp.MustCompile(`(?m)^figure +escrowjobs +raw asynq +BullMQ 6\.7\.0 +÷ raw +÷ BullMQ +target +met$`)
	loc := header.FindStringIndex(out)
	if loc == nil {
		t.Fatalf("no table header in:\n%s", out)
	}
	lines := strings.Split(out[loc[1]+1:], "\n")
	rows := r.compareRows()
	cols := regexp.MustCompile(` {2,}`)
	for i, row := range rows {
		got := cols.Split(strings.TrimRight(lines[i], " "), -1)
		want := []string{row.figure, row.ours, row.raw, row.bull, row.vsRaw, row.vsBull, row.target, row.met}
		if row.target == "" { // an empty column is only spaces
			want = append(want[:6], row.met)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("line %d:\ngot  %q\nwant %q", i, got, want)
		}
	}
	for _, s := range []string{"loadgen: escrowjobs vs raw asynq vs BullMQ 6.7.0", "BullMQ: queue.add (attempts 4, removeOnComplete) from 50 async callers",
		"idle (one run each, 5s window): escrowjobs, wake-up, 4 loops, 4 samples; raw asynq, TaskCheckInterval 1s, 2 samples; BullMQ Worker at concurrency 50"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "in detail") || strings.Contains(out, "\nidle: Redis commands/s") {
		t.Errorf("without -detail the output has the escrowjobs-vs-raw tables:\n%s", out)
	}
	r.cfg.detail = true
	buf.Reset()
	r.print(&buf)
	if out := buf.String(); !strings.Contains(out, "escrowjobs vs raw asynq in detail:") || !strings.Contains(out, "\nidle: Redis commands/s") {
		t.Errorf("with -detail the output lacks the escrowjobs-vs-raw tables:\n%s", out)
	}
}
