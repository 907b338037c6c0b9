package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"
)

// report is every figure of one run.
type report struct {
	cfg          config
	redisVersion string
	redisURL     string
	ours, raw    []enqueueFigures  // one per round
	proc         map[int][]float64 // fetch loops → jobs/s, one per round
	rawProc      []float64
	idle         []idleFigure
	rawIdle      *idleFigure
}

// row is one line of the table; met is "yes", "NO" or "-" (no target).
type row struct {
	figure, ours, raw, ratio, target, met string
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func jobsPerSec(r float64) string { return fmt.Sprintf("%.0f jobs/s", r) }

func durRow(figure string, ours, raw time.Duration, target string, met string) row {
	return row{figure, human(ours), human(raw), ratio(float64(ours), float64(raw)), target, met}
}

// median of xs (the lower middle for an even count).
func median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func medianOf[T int64 | float64 | time.Duration](fs []enqueueFigures, get func(enqueueFigures) T) T {
	xs := make([]T, len(fs))
	for i, f := range fs {
		xs[i] = get(f)
	}
	return median(xs)
}

func (r *report) rows() []row {
	var rows []row
	if len(r.ours) > 0 && len(r.raw) > 0 {
		rows = r.throughputRows()
	}
	if r.rawIdle != nil {
		ri := *r.rawIdle
		for _, f := range r.idle {
			rows = append(rows,
				row{fmt.Sprintf("idle Redis commands/s, %d loops", f.loops), fmt.Sprintf("%.0f /s", f.cmdsPerSec), fmt.Sprintf("%.0f /s", ri.cmdsPerSec),
					ratio(f.cmdsPerSec, ri.cmdsPerSec), "≤ 400 /s", yesNo(f.cmdsPerSec <= 400)},
				durRow(fmt.Sprintf("idle enqueue → handler start p50, %d loops", f.loops), f.lat.q(0.5), ri.lat.q(0.5), "≤ 10 ms", yesNo(f.lat.q(0.5) <= 10*time.Millisecond)),
				durRow(fmt.Sprintf("idle enqueue → handler start p99, %d loops", f.loops), f.lat.q(0.99), ri.lat.q(0.99), "≤ 30 ms", yesNo(f.lat.q(0.99) <= 30*time.Millisecond)),
			)
		}
	}
	return rows
}

// throughputRows are the enqueue, memory and processing figures.
func (r *report) throughputRows() []row {
	c := r.cfg
	oRate := medianOf(r.ours, func(f enqueueFigures) float64 { return f.rate })
	wRate := medianOf(r.raw, func(f enqueueFigures) float64 { return f.rate })
	rows := []row{
		{fmt.Sprintf("enqueue throughput, %d goroutines", c.c), jobsPerSec(oRate), jobsPerSec(wRate), ratio(oRate, wRate),
			"≥ 0.95× raw", yesNo(oRate >= 0.95*wRate)},
	}
	names := [3]string{"p50", "p99", "p999"}
	for i, name := range names {
		o := medianOf(r.ours, func(f enqueueFigures) time.Duration { return f.par[i] })
		w := medianOf(r.raw, func(f enqueueFigures) time.Duration { return f.par[i] })
		rows = append(rows, durRow(fmt.Sprintf("enqueue latency %s, %d goroutines", name, c.c), o, w, "", "-"))
	}
	for i, name := range names {
		o := medianOf(r.ours, func(f enqueueFigures) time.Duration { return f.seq[i] })
		w := medianOf(r.raw, func(f enqueueFigures) time.Duration { return f.seq[i] })
		target, met := "", "-"
		if name == "p99" {
			target, met = "≤ 2× raw", yesNo(o <= 2*w)
		}
		rows = append(rows, durRow(fmt.Sprintf("enqueue latency %s, 1 goroutine", name), o, w, target, met))
	}
	oMem := medianOf(r.ours, func(f enqueueFigures) float64 { return f.memPerJob })
	wMem := medianOf(r.raw, func(f enqueueFigures) float64 { return f.memPerJob })
	rows = append(rows, row{"Redis memory per pending job", fmt.Sprintf("%.0f B", oMem), fmt.Sprintf("%.0f B", wMem),
		ratio(oMem, wMem), "≤ 1024 B", yesNo(oMem <= 1024)})
	rawProc := median(r.rawProc)
	for _, loops := range c.loops {
		rate := median(r.proc[loops])
		rows = append(rows, row{fmt.Sprintf("processing throughput, k=%d, %d loops", c.k, loops), jobsPerSec(rate), jobsPerSec(rawProc),
			ratio(rate, rawProc), "≥ 1.2× raw", yesNo(rate >= 1.2*rawProc)})
	}
	return rows
}

func (r *report) print(w io.Writer) {
	c := r.cfg
	rawPoll := "asynq default 1s"
	if c.rawPoll > 0 {
		rawPoll = c.rawPoll.String()
	}
	fmt.Fprintf(w, "loadgen: escrowjobs vs raw asynq, same run, same Redis\n")
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s, Redis %s at %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), r.redisVersion, r.redisURL)
	fmt.Fprintf(w, "run: n=%d jobs (nine types round-robin), c=%d, k=%d, loops=%s, latency-n=%d, rounds=%d (medians), idle samples %d (raw %d, raw poll %s), idle window %s\n",
		c.n, c.c, c.k, c.loops.String(), c.latencyN, c.rounds, c.idleSamples, c.rawIdleSamples, rawPoll, c.idleWindow)
	fmt.Fprintf(w, "raw asynq: asynq.Client + TaskID, the same payload bytes and ID length; one asynq.Server, concurrency %d, no-op handler\n\n", c.k)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tescrowjobs\traw asynq\tratio\ttarget\tmet")
	for _, x := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.figure, x.ours, x.raw, x.ratio, x.target, x.met)
	}
	_ = tw.Flush()
}
