package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is every figure of one run.
type report struct {
	cfg          config
	redisVersion string
	redisURL     string
	ours, raw    []enqueueFigures     // one per round
	proc         map[int][]procFigure // fetch loops → one per round
	rawProc      []procFigure
	idle         []idleFigure
	flow         []flowFigure // flow processing, flows side, one per round
	flowJobs     []flowFigure // the same jobs enqueued at once
	latency      []latencyRound
	latKinds     []latencyKind     // the paths measured by the latency rounds
	bullVersion  string            // -bullmq: BullMQ's version
	bull         []enqueueFigures  // -bullmq: BullMQ's enqueue side, one per round
	bullProc     []procFigure      // -bullmq: BullMQ's Worker, one per round
	bullIdle     *bullmqIdleFigure // -bullmq: BullMQ's idle Worker
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
	if len(r.ours) > 0 && len(r.raw) > 0 {
		return r.throughputRows()
	}
	return nil
}

// spread is "median (min–max)" of xs formatted by f.
func spread(xs []float64, f func(float64) string) string {
	if len(xs) < 2 {
		return f(median(xs))
	}
	return fmt.Sprintf("%s (%s–%s)", f(median(xs)), f(slices.Min(xs)), f(slices.Max(xs)))
}

// ratios are ours[i]/raw[i], round by round (rounds run interleaved, so a
// pair shares the machine's load of its moment).
func ratios(ours, raw []float64) []float64 {
	var out []float64
	for i := range min(len(ours), len(raw)) {
		if raw[i] > 0 {
			out = append(out, ours[i]/raw[i])
		}
	}
	return out
}

func twoDecimals(x float64) string { return fmt.Sprintf("%.2f", x) }
func oneDecimal(x float64) string  { return fmt.Sprintf("%.1f", x) }

// field is get of every element of xs.
func field[T any](xs []T, get func(T) float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = get(x)
	}
	return out
}
func kJobs(x float64) string { return fmt.Sprintf("%.1fk", x/1000) }

// idleTarget is the target of an idle side: SPEC §7 with wake-up (§12),
// and without it; raw asynq has none.
func idleTarget(k idleKind) (cmds float64, p50, p99 time.Duration, ok bool) {
	switch k {
	case idleWake:
		return 20, 2 * time.Millisecond, 6 * time.Millisecond, true
	case idlePolling:
		return 400, 10 * time.Millisecond, 30 * time.Millisecond, true
	}
	return 0, 0, 0, false
}

// printIdle prints the idle figures, one side per line.
func (r *report) printIdle(w io.Writer) {
	if len(r.idle) == 0 {
		return
	}
	fmt.Fprintf(w, "\nidle: Redis commands/s over %s with nothing to do (every command Redis ran, scripts' own included), then enqueue → handler start of jobs enqueued one at a time\n", r.cfg.idleWindow)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "side\tcommands/s\tp50\tp99\tsamples\ttarget\tmet")
	for _, f := range r.idle {
		target, met := "-", "-"
		if cmds, p50, p99, ok := idleTarget(f.side); ok {
			target = fmt.Sprintf("≤ %.0f /s, p50 ≤ %s, p99 ≤ %s", cmds, human(p50), human(p99))
			met = yesNo(f.cmdsPerSec <= cmds && f.lat.q(0.5) <= p50 && f.lat.q(0.99) <= p99)
		}
		fmt.Fprintf(tw, "%s\t%.1f /s\t%s\t%s\t%d\t%s\t%s\n", f.label, f.cmdsPerSec, human(f.lat.q(0.5)), human(f.lat.q(0.99)), len(f.lat), target, met)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nidle commands by name, per second:")
	for _, f := range r.idle {
		fmt.Fprintf(w, "  %s: %s\n", f.label, f.cmds)
	}
}

// throughputRows are the enqueue, memory and processing figures.
func (r *report) throughputRows() []row {
	c := r.cfg
	oRates, wRates := field(r.ours, func(f enqueueFigures) float64 { return f.rate }), field(r.raw, func(f enqueueFigures) float64 { return f.rate })
	eq := ratios(oRates, wRates)
	rows := []row{
		{fmt.Sprintf("enqueue throughput, %d goroutines, jobs/s", c.c), spread(oRates, kJobs), spread(wRates, kJobs), spread(eq, twoDecimals),
			"≥ 0.8× raw", yesNo(median(eq) >= 0.8)},
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
	rate := func(f procFigure) float64 { return f.rate }
	cpu := func(f procFigure) float64 { return f.cpu }
	rawRates := field(r.rawProc, rate)
	for _, loops := range c.loops {
		ours := field(r.proc[loops], rate)
		pr := ratios(ours, rawRates)
		rows = append(rows, row{fmt.Sprintf("processing throughput, k=%d, %d loops, jobs/s", c.k, loops), spread(ours, kJobs), spread(rawRates, kJobs),
			spread(pr, twoDecimals), "≥ 1.2× raw", yesNo(median(pr) >= 1.2)})
	}
	// CPU time per job moves far less than wall-clock rates when other
	// processes compete for the cores: the figure to steer by on a busy
	// machine.
	oCPU, wCPU := field(r.ours, func(f enqueueFigures) float64 { return f.cpu }), field(r.raw, func(f enqueueFigures) float64 { return f.cpu })
	rows = append(rows, row{fmt.Sprintf("enqueue CPU per job (this process), %d goroutines, µs", c.c), spread(oCPU, oneDecimal), spread(wCPU, oneDecimal),
		spread(ratios(oCPU, wCPU), twoDecimals), "", "-"})
	for _, loops := range c.loops {
		ours := field(r.proc[loops], cpu)
		rows = append(rows, row{fmt.Sprintf("processing CPU per job (this process), %d loops, µs", loops), spread(ours, oneDecimal), spread(field(r.rawProc, cpu), oneDecimal),
			spread(ratios(ours, field(r.rawProc, cpu)), twoDecimals), "", "-"})
	}
	return rows
}

func (r *report) print(w io.Writer) {
	c := r.cfg
	rawPoll := "asynq default 1s"
	if c.rawPoll > 0 {
		rawPoll = c.rawPoll.String()
	}
	if r.cfg.bullmq != "" {
		fmt.Fprintf(w, "loadgen: escrowjobs vs raw asynq vs BullMQ %s, same run, same Redis\n", r.bullVersion)
	} else {
		fmt.Fprintf(w, "loadgen: escrowjobs vs raw asynq, same run, same Redis\n")
	}
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s, Redis %s at %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), r.redisVersion, r.redisURL)
	fmt.Fprintf(w, "run: n=%d jobs (nine types round-robin, %d per escrow), c=%d, k=%d, loops=%s, latency-n=%d, rounds=%d interleaved (median (min–max); ratio = median of the rounds' ratios), raw poll %s\n",
		c.n, c.perEscrow, c.c, c.k, c.loops.String(), c.latencyN, c.rounds, rawPoll)
	fmt.Fprintf(w, "raw asynq: asynq.Client + TaskID, the same payload bytes and ID length; one asynq.Server, concurrency %d, no-op handler\n", c.k)
	fmt.Fprintf(w, "load: 1-minute load average %s at the end of the run (2 cores: above ~1 means others competed for the CPU)\n", loadAverage())
	if c.bullmq != "" {
		r.printCompare(w)
		if !c.detail {
			return
		}
		fmt.Fprintln(w, "\nescrowjobs vs raw asynq in detail:")
	}
	if rows := r.rows(); len(rows) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "figure\tescrowjobs\traw asynq\tratio\ttarget\tmet")
		for _, x := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.figure, x.ours, x.raw, x.ratio, x.target, x.met)
		}
		_ = tw.Flush()
	}
	r.printIdle(w)
	r.printFlows(w)
	r.printFlowLatency(w)
}

// loadAverage is /proc/loadavg's 1-minute figure, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// perStep is n commands over steps, formatted.
func perStep(n int64, steps int) float64 { return float64(n) / float64(steps) }

// printFlows prints the flow processing figures: the flows against the
// same jobs enqueued at once, and the Redis commands per step.
func (r *report) printFlows(w io.Writer) {
	if len(r.flow) == 0 || len(r.flowJobs) == 0 {
		return
	}
	c := r.cfg
	steps := c.flowN * flowSteps
	fmt.Fprintf(w, "\nflows: %d three-step flows (capture, then e-mail and webhook after it) started with flows.Start from %d goroutines, vs the same %d jobs enqueued at once; the same worker (flows' middleware, k=%d, %d loops) drains both\n",
		c.flowN, c.c, steps, c.k, c.loops[0])
	rate := func(f flowFigure) float64 { return f.rate }
	cpu := func(f flowFigure) float64 { return f.cpu }
	enq := func(f flowFigure) float64 { return perStep(f.enqCmds, steps) }
	proc := func(f flowFigure) float64 { return perStep(f.prCmds, steps) }
	all := func(f flowFigure) float64 { return perStep(f.enqCmds+f.prCmds, steps) }
	fr, jr := field(r.flow, rate), field(r.flowJobs, rate)
	pr := ratios(fr, jr)
	rows := []row{
		{"processing throughput, steps/s", spread(fr, kJobs), spread(jr, kJobs), spread(pr, twoDecimals), "≥ 0.8× jobs", yesNo(median(pr) >= 0.8)},
		{"processing CPU per step (this process), µs", spread(field(r.flow, cpu), oneDecimal), spread(field(r.flowJobs, cpu), oneDecimal),
			spread(ratios(field(r.flow, cpu), field(r.flowJobs, cpu)), twoDecimals), "", "-"},
	}
	for _, x := range []struct {
		name string
		get  func(flowFigure) float64
	}{{"Redis commands per step, start/enqueue", enq}, {"Redis commands per step, processing", proc}, {"Redis commands per step, total", all}} {
		fv, jv := field(r.flow, x.get), field(r.flowJobs, x.get)
		rows = append(rows, row{x.name, spread(fv, twoDecimals), spread(jv, twoDecimals), spread(ratios(fv, jv), twoDecimals), "", "-"})
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tflows\tjobs\tratio\ttarget\tmet")
	for _, x := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.figure, x.ours, x.raw, x.ratio, x.target, x.met)
	}
	_ = tw.Flush()
	extra := make([]float64, 0, len(r.flow))
	for i := range min(len(r.flow), len(r.flowJobs)) {
		extra = append(extra, all(r.flow[i])-all(r.flowJobs[i]))
	}
	fmt.Fprintf(w, "extra Redis commands per step, flows − jobs (scripts' own included): %s\n", spread(extra, twoDecimals))
	fmt.Fprintln(w, "Redis commands per step by name, first round (start/enqueue; processing):")
	fmt.Fprintf(w, "  flows: %s; %s\n", byName(r.flow[0].enqueue, steps), byName(r.flow[0].proc, steps))
	fmt.Fprintf(w, "  jobs: %s; %s\n", byName(r.flowJobs[0].enqueue, steps), byName(r.flowJobs[0].proc, steps))
}

// byName formats commands by name per step, most frequent first, those
// under 0.005 per step left out.
func byName(cs []calls, steps int) string {
	if len(cs) == 0 {
		return "none"
	}
	var parts []string
	for _, x := range cs {
		if v := perStep(x.n, steps); v >= 0.005 { // the worker's own background commands round to 0.00
			parts = append(parts, fmt.Sprintf("%s %.2f", strings.ToLower(x.name), v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// printFlowLatency prints the latency paths: p50 and p99 (medians over
// the rounds, with their range), each flow's p99 against one job's on the
// same path.
func (r *report) printFlowLatency(w io.Writer) {
	if len(r.latency) == 0 {
		return
	}
	fmt.Fprintf(w, "\nflow latency: idle worker (flows' middleware), %d samples per path and round, paths interleaved in random order, %d rounds; to the last regular step's handler start\n",
		r.cfg.flowSamples, len(r.latency))
	ms := func(x float64) string { return human(time.Duration(x)) }
	q := func(k latencyKind, p float64) []float64 {
		out := make([]float64, len(r.latency))
		for i, l := range r.latency {
			out[i] = float64(l[k].q(p))
		}
		return out
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tp50\tp99\tsamples\tp99 ÷ one job's\ttarget\tmet")
	for _, k := range r.latKinds {
		ratioCol, target, met := "-", "-", "-"
		if job := k - 1; k == latDirectFlow || k == latOutboxFlow { // each flow path follows its job path
			pr := ratios(q(k, 0.99), q(job, 0.99))
			ratioCol, target, met = spread(pr, twoDecimals), "≤ 3× one job's", yesNo(median(pr) <= 3)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", latencyLabels[k], spread(q(k, 0.5), ms), spread(q(k, 0.99), ms), len(r.latency[0][k])*len(r.latency), ratioCol, target, met)
	}
	_ = tw.Flush()
}
