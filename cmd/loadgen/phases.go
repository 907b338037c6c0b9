package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/escrowjobs/escrowjobs/devmode"
	"github.com/escrowjobs/escrowjobs/escrowtest/sample"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
)

// stallTimeout fails a phase that makes no progress for this long.
const stallTimeout = 30 * time.Second

// bench runs the phases against one Redis.
type bench struct {
	cfg    config
	opt    asynq.RedisConnOpt
	adm    admin
	stderr io.Writer
	bull   *bullmqProbe // the BullMQ column (-bullmq), or nil
}

// enqueuer enqueues one job; clients returns one and its Close.
type enqueuer func(ctx context.Context, j *job) error

type clients func() (enqueuer, func())

func (b *bench) oursClient() (enqueuer, func()) {
	c := tasks.NewClient(b.opt)
	return func(ctx context.Context, j *job) error {
		t, err := sample.Build(j.p)
		if err != nil {
			return err
		}
		_, err = c.Enqueue(ctx, t)
		return err
	}, func() { _ = c.Close() }
}

func (b *bench) rawClient() (enqueuer, func()) {
	c := asynq.NewClient(b.opt)
	return func(ctx context.Context, j *job) error {
		_, err := c.EnqueueContext(ctx, rawTask(j))
		return err
	}, func() { _ = c.Close() }
}

// enqueueFigures are the figures of one enqueue phase.
type enqueueFigures struct {
	rate      float64          // jobs/s from c goroutines
	par       [3]time.Duration // p50, p99, p999 from c goroutines
	seq       [3]time.Duration // p50, p99, p999 from one goroutine
	memPerJob float64          // bytes of used_memory per pending job
	cpu       float64          // CPU µs of this process per job enqueued from c goroutines
	redisCPU  float64          // CPU µs of Redis per job enqueued from c goroutines
}

var quantiles = [3]float64{0.50, 0.99, 0.999}

func (l latencies) summary() (out [3]time.Duration) {
	for i, q := range quantiles {
		out[i] = l.q(q)
	}
	return out
}

// enqueueAll enqueues jobs from c goroutines and returns the wall time and
// every call's latency. Any failed enqueue fails the phase.
func (b *bench) enqueueAll(ctx context.Context, label string, jobs []job, c int, enq enqueuer) (time.Duration, latencies, error) {
	var (
		next     atomic.Int64
		failed   atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	lats := make([][]time.Duration, c)
	bar := startProgress(b.stderr, b.cfg.progress, label, len(jobs))
	runtime.GC()
	begin := time.Now()
	for g := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, len(jobs)/c+1)
			pending := 0
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					break
				}
				t0 := time.Now()
				err := enq(ctx, &jobs[i])
				local = append(local, time.Since(t0))
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
				}
				if pending++; pending == 64 {
					bar.add(pending)
					pending = 0
				}
			}
			bar.add(pending)
			lats[g] = local
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	bar.finish()
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if n := failed.Load(); n > 0 {
		return 0, nil, fmt.Errorf("%s: %d of %d enqueues failed, the first with: %w", label, n, len(jobs), firstErr)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return elapsed, sorted(all), nil
}

// enqueuePhase empties the database, enqueues N jobs from C goroutines and
// latency-n from one, and measures the memory the pending jobs take.
func (b *bench) enqueuePhase(ctx context.Context, label string, newClient clients) (enqueueFigures, error) {
	var f enqueueFigures
	if err := b.adm.reset(ctx); err != nil {
		return f, err
	}
	mem0, err := b.adm.usedMemory(ctx)
	if err != nil {
		return f, err
	}
	enq, closeClient := newClient()
	jobs := mix(b.cfg.n, nonce(), b.cfg.perEscrow)
	redisCPU0, err := b.adm.cpu(ctx)
	if err != nil {
		closeClient()
		return f, err
	}
	ourCPU0 := processCPU()
	elapsed, par, err := b.enqueueAll(ctx, label+": enqueue", jobs, b.cfg.c, enq)
	if err != nil {
		closeClient()
		return f, err
	}
	ourCPU := processCPU() - ourCPU0
	f.cpu = float64(ourCPU/time.Duration(b.cfg.n)) / float64(time.Microsecond)
	redisCPU, err := b.adm.cpu(ctx)
	if err != nil {
		closeClient()
		return f, err
	}
	f.redisCPU = float64((redisCPU-redisCPU0)/time.Duration(b.cfg.n)) / float64(time.Microsecond)
	if b.cfg.verbose {
		fmt.Fprintf(b.stderr, "%s: enqueue %.0f jobs/s from %d goroutines; CPU per job: this process %s, Redis %s\n",
			label, float64(b.cfg.n)/elapsed.Seconds(), b.cfg.c, human(ourCPU/time.Duration(b.cfg.n)), human((redisCPU-redisCPU0)/time.Duration(b.cfg.n)))
	}
	seqJobs := mix(b.cfg.latencyN, nonce(), b.cfg.perEscrow)
	_, seq, err := b.enqueueAll(ctx, label+": enqueue, 1 goroutine", seqJobs, 1, enq)
	if err != nil {
		closeClient()
		return f, err
	}
	f.rate, f.par, f.seq = float64(b.cfg.n)/elapsed.Seconds(), par.summary(), seq.summary()
	// Closed connections free their buffers: used_memory then holds the
	// jobs and not the 50 clients' query buffers.
	closeClient()
	mem1, err := b.adm.usedMemory(ctx)
	if err != nil {
		return f, err
	}
	f.memPerJob = float64(mem1-mem0) / float64(b.cfg.n+b.cfg.latencyN)
	return f, nil
}

// refill empties the database and enqueues a fresh N + latency-n jobs for
// another processing run (figures not kept).
func (b *bench) refill(ctx context.Context, label string) error {
	if err := b.adm.reset(ctx); err != nil {
		return err
	}
	enq, closeClient := b.oursClient()
	defer closeClient()
	_, _, err := b.enqueueAll(ctx, label+": enqueue", mix(b.cfg.n+b.cfg.latencyN, nonce(), b.cfg.perEscrow), b.cfg.c, enq)
	return err
}

// jobLogger is the handlers' and worker's logger: JSON at Info, as in
// production, written nowhere. Formatting each line is part of the cost.
func jobLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// noopMux is the real ServeMux with no-op adapters (devmode.Discard),
// logging to log.
func noopMux(log *slog.Logger) (*asynq.ServeMux, error) {
	return handlers.NewServeMux(handlers.Deps{
		Mailer: devmode.Discard{}, Payments: devmode.Discard{}, Sender: devmode.Discard{}, Audit: devmode.Discard{}, Enqueuer: devmode.Discard{}, Logger: log,
	})
}

// worker is the start function of the escrowjobs worker at loops fetch
// loops, with wake-ups on or off (startWorker).
func (b *bench) worker(loops int, wake bool) func(*probe) (func(), error) {
	return func(p *probe) (func(), error) { return b.startWorker(p, loops, wake) }
}

// startWorker runs the escrowjobs worker with no-op adapters around probe p.
func (b *bench) startWorker(p *probe, loops int, wake bool) (func(), error) {
	log := jobLogger()
	mux, err := noopMux(log)
	if err != nil {
		return nil, err
	}
	w, err := worker.New(worker.Config{
		Redis: b.opt, Concurrency: b.cfg.k, FetchLoops: loops, PollInterval: b.cfg.pollInterval,
		FallbackPoll: b.cfg.fallbackPoll, DisableWake: !wake, DeadLetters: devmode.Discard{}, Logger: log,
	}, p.wrap(mux))
	if err != nil {
		return nil, err
	}
	if err := w.Start(); err != nil {
		return nil, err
	}
	return w.Shutdown, nil
}

// startRaw runs one raw asynq.Server with a no-op handler around probe p.
func (b *bench) startRaw(p *probe) (func(), error) { return b.startRawPolling(p, b.cfg.rawPoll) }

// startRawPolling is startRaw with TaskCheckInterval poll (0: asynq's default).
func (b *bench) startRawPolling(p *probe, poll time.Duration) (func(), error) {
	srv := newRawServer(b.opt, b.cfg.k, poll, b.stderr)
	if err := srv.Start(p.wrap(rawHandler)); err != nil {
		return nil, err
	}
	return srv.Shutdown, nil
}

// procFigure is one processing run: jobs/s from the first handler start to
// the n-th handler return, and CPU µs of this process and of Redis per job.
type procFigure struct{ rate, cpu, redisCPU float64 }

// process drains n pending jobs.
func (b *bench) process(ctx context.Context, label string, n int, startFn func(*probe) (func(), error)) (procFigure, error) {
	var f procFigure
	p := newProbe(n, false)
	redisCPU0, before, err := b.adm.load(ctx)
	if err != nil {
		return f, err
	}
	runtime.GC()
	ourCPU0 := processCPU()
	stop, err := startFn(p)
	if err != nil {
		return f, err
	}
	defer stop()
	bar := startProgress(b.stderr, b.cfg.progress, label+": process", n)
	err = awaitDone(ctx, label, p, bar)
	bar.finish()
	if err != nil {
		return f, err
	}
	rate := float64(n) / p.elapsed().Seconds()
	ourCPU := processCPU() - ourCPU0
	f.rate, f.cpu = rate, float64(ourCPU/time.Duration(n))/float64(time.Microsecond)
	redisCPU, after, err := b.adm.load(ctx)
	if err != nil {
		return f, err
	}
	f.redisCPU = float64((redisCPU-redisCPU0)/time.Duration(n)) / float64(time.Microsecond)
	if b.cfg.verbose {
		fmt.Fprintf(b.stderr, "%s: %.0f jobs/s; CPU per job: this process %s, Redis %s; Redis commands per job (scripts' own included): %s\n",
			label, rate, human(ourCPU/time.Duration(n)), human((redisCPU-redisCPU0)/time.Duration(n)), perJob(before, after, n))
	}
	return f, nil
}

// awaitDone waits until the probe has seen its target, failing on a
// failed job or on no progress for stallTimeout.
func awaitDone(ctx context.Context, label string, p *probe, bar *progress) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	seen, lastMove := int64(0), time.Now()
	for {
		select {
		case <-p.done:
			bar.add(int(p.target - seen))
			if f := p.failed.Load(); f > 0 {
				return fmt.Errorf("%s: %d of %d jobs failed", label, f, p.target)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if now := p.n.Load(); now != seen {
				bar.add(int(now - seen))
				seen, lastMove = now, time.Now()
			} else if time.Since(lastMove) > stallTimeout {
				return fmt.Errorf("%s: stalled at %d of %d jobs", label, seen, p.target)
			}
		}
	}
}

// throughput runs the enqueue and processing phases -rounds times: ours
// then raw (raw first in odd rounds, so drift favours neither; with
// -bullmq the three sides rotate, ours, raw, BullMQ, then raw, BullMQ,
// ours, …), then ours again for every further -loops value.
func (b *bench) throughput(ctx context.Context, rep *report) error {
	rep.proc = map[int][]procFigure{}
	for r := range b.cfg.rounds {
		tag := ""
		if b.cfg.rounds > 1 {
			tag = fmt.Sprintf(" (round %d/%d)", r+1, b.cfg.rounds)
		}
		steps := []func() error{
			func() error { return b.oursRound(ctx, rep, tag) },
			func() error { return b.rawRound(ctx, rep, tag) },
		}
		if b.bull != nil {
			steps = append(steps, func() error { return b.bullmqSide(ctx, rep, tag) })
		}
		for _, step := range rotated(steps, r) {
			if err := step(); err != nil {
				return err
			}
		}
		for _, loops := range b.cfg.loops[1:] {
			label := fmt.Sprintf("escrowjobs, %d loops%s", loops, tag)
			if err := b.refill(ctx, label); err != nil {
				return err
			}
			pf, err := b.process(ctx, label, b.cfg.n+b.cfg.latencyN, b.worker(loops, true))
			if err != nil {
				return err
			}
			rep.proc[loops] = append(rep.proc[loops], pf)
		}
	}
	return nil
}

func (b *bench) oursRound(ctx context.Context, rep *report, tag string) error {
	loops := b.cfg.loops[0]
	f, pf, err := b.round(ctx, "escrowjobs", "escrowjobs"+tag, fmt.Sprintf("escrowjobs, %d loops%s", loops, tag), b.oursClient, b.worker(loops, true))
	if err != nil {
		return err
	}
	rep.ours = append(rep.ours, f)
	rep.proc[loops] = append(rep.proc[loops], pf)
	return nil
}

func (b *bench) rawRound(ctx context.Context, rep *report, tag string) error {
	f, pf, err := b.round(ctx, "raw", "raw asynq"+tag, "raw asynq"+tag, b.rawClient, b.startRaw)
	if err != nil {
		return err
	}
	rep.raw = append(rep.raw, f)
	rep.rawProc = append(rep.rawProc, pf)
	return nil
}

// round is one side's enqueue phase (label, clients from newClient) and
// processing phase (procLabel, the consumer started by start), each with
// pprof labels side and phase.
func (b *bench) round(ctx context.Context, side, label, procLabel string, newClient clients, start func(*probe) (func(), error)) (enqueueFigures, procFigure, error) {
	var f enqueueFigures
	var pf procFigure
	err := labelled(ctx, side, "enqueue", func(ctx context.Context) (err error) {
		f, err = b.enqueuePhase(ctx, label, newClient)
		return err
	})
	if err != nil {
		return f, pf, err
	}
	err = labelled(ctx, side, "process", func(ctx context.Context) (err error) {
		pf, err = b.process(ctx, procLabel, b.cfg.n+b.cfg.latencyN, start)
		return err
	})
	return f, pf, err
}

// labelled runs fn with pprof labels side and phase; goroutines it starts
// (enqueuers, the worker's or the Server's) inherit them, so a -cpuprofile
// splits by side: go tool pprof -tagfocus side=escrowjobs,phase=process.
func labelled(ctx context.Context, side, phase string, fn func(context.Context) error) error {
	var err error
	pprof.Do(ctx, pprof.Labels("side", side, "phase", phase), func(ctx context.Context) { err = fn(ctx) })
	return err
}

// idleFigure is one idle run: Redis commands/s with nothing to do, and
// enqueue → handler start of jobs enqueued one at a time.
type idleFigure struct {
	label      string
	side       idleKind
	loops      int
	cmdsPerSec float64
	cmds       string // the idle commands by name, per second
	lat        latencies
}

// idleKind is what an idle figure measured.
type idleKind int

const (
	idleWake    idleKind = iota // the worker, wake-up on enqueue (the default)
	idlePolling                 // the worker with DisableWake
	idleRaw                     // one raw asynq.Server
)

// idlePhases measures the worker with wake-ups at every -loops value, the
// worker polling (-idle-polling), then one raw Server per -idle-raw-polls
// value, all against the same Redis in this run.
func (b *bench) idlePhases(ctx context.Context, rep *report) error {
	type side struct {
		label   string
		kind    idleKind
		loops   int
		samples int
		gap     time.Duration
		start   func(*probe) (func(), error)
		client  clients
	}
	var sides []side
	for _, loops := range b.cfg.loops {
		sides = append(sides, side{fmt.Sprintf("escrowjobs, wake-up, %d loops", loops), idleWake, loops, b.cfg.idleSamples, b.cfg.idleGap,
			b.worker(loops, true), b.oursClient})
	}
	if b.cfg.idlePolling {
		loops := b.cfg.loops[0]
		poll := b.cfg.pollInterval
		if poll <= 0 {
			poll = worker.DefaultPollInterval
		}
		sides = append(sides, side{fmt.Sprintf("escrowjobs, polling every %s, %d loops", poll, loops), idlePolling, loops, b.cfg.idleSamples, b.gap(poll),
			b.worker(loops, false), b.oursClient})
	}
	for _, poll := range b.cfg.idleRawPolls {
		samples := b.cfg.idleSamples
		if poll >= 500*time.Millisecond {
			samples = b.cfg.rawIdleSamples
		}
		sides = append(sides, side{fmt.Sprintf("raw asynq, TaskCheckInterval %s", poll), idleRaw, 1, samples, b.gap(poll),
			func(p *probe) (func(), error) { return b.startRawPolling(p, poll) }, b.rawClient})
	}
	for _, sd := range sides {
		if err := b.adm.reset(ctx); err != nil {
			return err
		}
		f, err := b.idle(ctx, sd.label, sd.samples, sd.gap, sd.start, sd.client)
		if err != nil {
			return err
		}
		f.label, f.side, f.loops = sd.label, sd.kind, sd.loops
		rep.idle = append(rep.idle, f)
	}
	if b.bull != nil {
		f, err := b.bullmqIdle(ctx)
		if err != nil {
			return err
		}
		rep.bullIdle = &f
	}
	return nil
}

// gap is the mean pause between idle samples: -idle-gap, but at least the
// poll interval of the side measured. A poller polls again right after a
// job, so shorter pauses would land every sample at the same early point
// of its sleep and overstate the wait.
func (b *bench) gap(poll time.Duration) time.Duration {
	return max(b.cfg.idleGap, poll)
}

// idleSettle lets a freshly started worker finish its start-up writes
// before idle commands are counted.
const idleSettle = 1500 * time.Millisecond

func (b *bench) idle(ctx context.Context, label string, samples int, gap time.Duration, startFn func(*probe) (func(), error), newClient clients) (idleFigure, error) {
	var f idleFigure
	p := newProbe(samples, true)
	stop, err := startFn(p)
	if err != nil {
		return f, err
	}
	defer stop()
	if err := sleep(ctx, idleSettle); err != nil {
		return f, err
	}
	s0, err := b.adm.commandStats(ctx)
	if err != nil {
		return f, err
	}
	c0, err := b.adm.commands(ctx)
	if err != nil {
		return f, err
	}
	t0 := time.Now()
	if err := sleep(ctx, b.cfg.idleWindow); err != nil {
		return f, err
	}
	c1, err := b.adm.commands(ctx)
	if err != nil {
		return f, err
	}
	// The first INFO is in c1; nothing else of ours ran in the window.
	secs := time.Since(t0).Seconds()
	f.cmdsPerSec = float64(c1-c0-1) / secs
	s1, err := b.adm.commandStats(ctx)
	if err != nil {
		return f, err
	}
	f.cmds = perSecond(s0, s1, secs)

	enq, closeClient := newClient()
	defer closeClient()
	jobs := mix(samples, nonce(), b.cfg.perEscrow)
	bar := startProgress(b.stderr, b.cfg.progress, label, samples)
	defer bar.finish()
	lat := make([]time.Duration, 0, samples)
	for i := range jobs {
		at := time.Now()
		if err := enq(ctx, &jobs[i]); err != nil {
			return f, fmt.Errorf("%s: enqueue: %w", label, err)
		}
		began, err := awaitStart(ctx, p, jobs[i].id)
		if err != nil {
			return f, fmt.Errorf("%s: %w", label, err)
		}
		lat = append(lat, began.Sub(at))
		for deadline := time.Now().Add(stallTimeout); p.n.Load() < int64(i+1); {
			if time.Now().After(deadline) {
				return f, fmt.Errorf("%s: job %s did not finish", label, jobs[i].id)
			}
			time.Sleep(100 * time.Microsecond)
		}
		bar.add(1)
		if err := sleep(ctx, gap/2+rand.N(gap)); err != nil {
			return f, err
		}
	}
	if n := p.failed.Load(); n > 0 {
		return f, fmt.Errorf("%s: %d jobs failed", label, n)
	}
	f.lat = sorted(lat)
	return f, nil
}

// awaitStart waits for the handler to start job id.
func awaitStart(ctx context.Context, p *probe, id string) (time.Time, error) {
	timeout := time.NewTimer(stallTimeout)
	defer timeout.Stop()
	for {
		select {
		case s := <-p.started:
			if s.id == id {
				return s.at, nil
			}
		case <-timeout.C:
			return time.Time{}, fmt.Errorf("job %s never reached a handler", id)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
