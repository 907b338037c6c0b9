package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// rotated is xs rotated left by r: round r's order of the sides, so each
// side runs first, second and last equally often (for two sides, every
// other round swaps them).
func rotated[T any](xs []T, r int) []T {
	k := r % len(xs)
	return append(slices.Clone(xs[k:]), xs[:k]...)
}

// cmpRow is one line of the table of the three sides (-bullmq):
// escrowjobs, raw asynq and BullMQ, and escrowjobs ÷ each of the others.
type cmpRow struct {
	figure, ours, raw, bull, vsRaw, vsBull, target, met string
}

// series is one figure of the three sides, one value per round (or one
// value, for the idle phase, which runs once).
type series struct {
	ours, raw, bull []float64
}

// cells formats s with sp: each side's median (min–max), and the medians
// (min–max) of the rounds' ratios, escrowjobs ÷ raw and ÷ BullMQ; "-"
// where a side was not measured.
func (s series) cells(figure string, sp func([]float64) string) cmpRow {
	cell := func(xs []float64, sp func([]float64) string) string {
		if len(xs) == 0 {
			return "-"
		}
		return sp(xs)
	}
	rs := spreadOf(ratioCell)
	return cmpRow{figure: figure, ours: cell(s.ours, sp), raw: cell(s.raw, sp), bull: cell(s.bull, sp),
		vsRaw: cell(ratios(s.ours, s.raw), rs), vsBull: cell(ratios(s.ours, s.bull), rs), target: "", met: "-"}
}

// spreadOf is spread with f.
func spreadOf(f func(float64) string) func([]float64) string {
	return func(xs []float64) string { return spread(xs, f) }
}

// unitSpread is spread with the unit written once: "170 µs (165–198)".
func unitSpread(xs []float64, f func(float64) string, unit string) string {
	if len(xs) < 2 {
		return f(median(xs)) + " " + unit
	}
	return fmt.Sprintf("%s %s (%s–%s)", f(median(xs)), unit, f(slices.Min(xs)), f(slices.Max(xs)))
}

// durSpread is unitSpread of durations (ns) in the median's unit, with
// human's digits.
func durSpread(xs []float64) string {
	m := time.Duration(median(xs))
	scale, unit, format := 1.0, "ns", "%.0f"
	switch {
	case m >= time.Second:
		scale, unit, format = 1e9, "s", "%.2f"
	case m >= time.Millisecond:
		scale, unit, format = 1e6, "ms", "%.2f"
	case m >= time.Microsecond:
		scale, unit, format = 1e3, "µs", "%.1f"
	}
	return unitSpread(xs, func(x float64) string { return fmt.Sprintf(format, x/scale) }, unit)
}

func bytesSpread(xs []float64) string {
	return unitSpread(xs, func(x float64) string { return fmt.Sprintf("%.0f", x) }, "B")
}

func perSecSpread(xs []float64) string { return unitSpread(xs, oneDecimal, "/s") }

// ratioCell is a ratio with two decimals, or two significant digits below
// 0.1 (idle latency against a 1 s poll is a few thousandths).
func ratioCell(x float64) string {
	if x < 0.1 && x > 0 {
		return fmt.Sprintf("%.2g", x)
	}
	return twoDecimals(x)
}

// vsRaw and vsBull are the medians of the rounds' ratios (0 when not
// measured).
func (s series) vsRaw() float64  { return median(ratios(s.ours, s.raw)) }
func (s series) vsBull() float64 { return median(ratios(s.ours, s.bull)) }

// withTarget sets the row's target and verdict.
func (c cmpRow) withTarget(target string, ok bool) cmpRow {
	c.target, c.met = target, yesNo(ok)
	return c
}

// atLeast is ratio ≥ want, or true when the ratio was not measured (0):
// a side left out is no verdict against escrowjobs.
func atLeast(ratio, want float64) bool { return ratio == 0 || ratio >= want }

// enqueueSeries and procSeries pick one figure of each side's rounds.
func (r *report) enqueueSeries(get func(enqueueFigures) float64) series {
	return series{field(r.ours, get), field(r.raw, get), field(r.bull, get)}
}

func (r *report) procSeries(get func(procFigure) float64) series {
	return series{field(r.proc[r.cfg.loops[0]], get), field(r.rawProc, get), field(r.bullProc, get)}
}

// compareRows are the figures of the table of the three sides: enqueue,
// memory and processing over the rounds, the idle phase, and with -flows
// the flow ÷ jobs ratio (escrowjobs only; the BullMQ probe runs no flows).
func (r *report) compareRows() []cmpRow {
	c := r.cfg
	var rows []cmpRow
	if len(r.ours) > 0 {
		rate := r.enqueueSeries(func(f enqueueFigures) float64 { return f.rate })
		p50 := r.enqueueSeries(func(f enqueueFigures) float64 { return float64(f.seq[0]) })
		p99 := r.enqueueSeries(func(f enqueueFigures) float64 { return float64(f.seq[1]) })
		mem := r.enqueueSeries(func(f enqueueFigures) float64 { return f.memPerJob })
		prate := r.procSeries(func(f procFigure) float64 { return f.rate })
		rows = append(rows,
			rate.cells(fmt.Sprintf("enqueue, %d callers, jobs/s", c.c), spreadOf(kJobs)).
				withTarget("≥ 0.8× raw, ≥ 1× BullMQ", atLeast(rate.vsRaw(), 0.8) && atLeast(rate.vsBull(), 1)),
			p50.cells("enqueue, 1 caller, p50", durSpread),
			p99.cells("enqueue, 1 caller, p99", durSpread).withTarget("≤ 2× raw", p99.vsRaw() <= 2),
			r.enqueueSeries(func(f enqueueFigures) float64 { return f.cpu }).cells("enqueue CPU/job, client process, µs", spreadOf(oneDecimal)),
			r.enqueueSeries(func(f enqueueFigures) float64 { return f.redisCPU }).cells("enqueue CPU/job, Redis, µs", spreadOf(oneDecimal)),
			mem.cells("Redis memory per pending job", bytesSpread).withTarget("≤ 1024 B", median(mem.ours) <= 1024),
			prate.cells(fmt.Sprintf("processing, concurrency %d, jobs/s", c.k), spreadOf(kJobs)).
				withTarget("≥ 1.2× raw, ≥ 1× BullMQ", atLeast(prate.vsRaw(), 1.2) && atLeast(prate.vsBull(), 1)),
			r.procSeries(func(f procFigure) float64 { return f.cpu }).cells("processing CPU/job, client process, µs", spreadOf(oneDecimal)),
			r.procSeries(func(f procFigure) float64 { return f.redisCPU }).cells("processing CPU/job, Redis, µs", spreadOf(oneDecimal)),
		)
	}
	if ours, raw, ok := r.idleSides(); ok {
		one := func(x float64) []float64 { return []float64{x} }
		var lat50, lat99, cmds series
		lat50.ours, lat99.ours, cmds.ours = one(float64(ours.lat.q(0.5))), one(float64(ours.lat.q(0.99))), one(ours.cmdsPerSec)
		if raw != nil {
			lat50.raw, lat99.raw, cmds.raw = one(float64(raw.lat.q(0.5))), one(float64(raw.lat.q(0.99))), one(raw.cmdsPerSec)
		}
		if b := r.bullIdle; b != nil {
			lat50.bull, lat99.bull, cmds.bull = one(float64(b.p50)), one(float64(b.p99)), one(b.cmdsPerSec)
		}
		rows = append(rows,
			lat50.cells("idle wake-up, enqueue → start, p50", durSpread).withTarget("≤ 2 ms", ours.lat.q(0.5) <= 2*time.Millisecond),
			lat99.cells("idle wake-up, enqueue → start, p99", durSpread).withTarget("≤ 6 ms", ours.lat.q(0.99) <= 6*time.Millisecond),
			cmds.cells("idle Redis commands/s", perSecSpread).withTarget("≤ 20 /s", ours.cmdsPerSec <= 20),
		)
	}
	if len(r.flow) > 0 && len(r.flowJobs) > 0 {
		rate := func(f flowFigure) float64 { return f.rate }
		fr := ratios(field(r.flow, rate), field(r.flowJobs, rate))
		rows = append(rows, cmpRow{figure: "flow ÷ the same 3 jobs, processing steps/s", ours: spread(fr, twoDecimals),
			raw: "-", bull: "-", vsRaw: "-", vsBull: "-"}.withTarget("≥ 0.8", median(fr) >= 0.8))
	}
	return rows
}

// idleSides are the idle figures the table compares: the worker with
// wake-ups at the first -loops value, and the first raw Server measured
// (asynq's default poll unless -idle-raw-polls says otherwise), if any.
func (r *report) idleSides() (ours idleFigure, raw *idleFigure, ok bool) {
	for i, f := range r.idle {
		switch {
		case f.side == idleWake && !ok:
			ours, ok = f, true
		case f.side == idleRaw && raw == nil:
			raw = &r.idle[i]
		}
	}
	return ours, raw, ok
}

// printCompare prints the table of the three sides and what each column
// measured.
func (r *report) printCompare(w io.Writer) {
	c := r.cfg
	rows := r.compareRows()
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tescrowjobs\traw asynq\tBullMQ %s\t÷ raw\t÷ BullMQ\ttarget\tmet\n", r.bullVersion)
	for _, x := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.figure, x.ours, x.raw, x.bull, x.vsRaw, x.vsBull, x.target, x.met)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nescrowjobs: typed constructors + tasks.Client; worker.Worker, %d loops, no-op adapters. raw asynq: asynq.Client + TaskID; one asynq.Server, no-op handler.\n", c.loops[0])
	fmt.Fprintf(w, "BullMQ: queue.add (attempts 4, removeOnComplete) from %d async callers in one node process; one Worker, concurrency %d, no-op processor; processing timed from the Worker's creation to the last completion.\n", c.c, c.k)
	fmt.Fprintln(w, "client process: CPU of loadgen (escrowjobs, raw) or of the node probe (BullMQ) over the phase; Redis: INFO cpu over the phase; memory: INFO used_memory growth / jobs pending.")
	if ours, raw, ok := r.idleSides(); ok {
		rawSide := "not measured"
		if raw != nil {
			rawSide = raw.label
		}
		bull := "not measured"
		if b := r.bullIdle; b != nil {
			bull = fmt.Sprintf("Worker at concurrency %d, jobs from a separate producer process, %d samples; idle commands by name: %s", c.k, b.samples, b.cmds)
		}
		fmt.Fprintf(w, "idle (one run each, %s window): %s, %d samples; %s, %d samples; BullMQ %s.\n", c.idleWindow, ours.label, len(ours.lat), rawSide, idleSamples(raw), bull)
	}
}

func idleSamples(f *idleFigure) int {
	if f == nil {
		return 0
	}
	return len(f.lat)
}
