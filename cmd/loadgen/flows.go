package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/escrowjobs/escrowjobs/devmode"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/postgres"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// flowSteps is the number of steps of the throughput phase's flow.
const flowSteps = 3

// escrowSteps are the payloads of escrow esc's release: the capture, the
// seller's e-mail, the partner's webhook and the audit line (the release
// flow's steps, in that order).
func escrowSteps(esc string) (capture, mail, hook, audit payloads.Payload) {
	capture = payloads.StripeCapturePayment{TransactionID: esc, PaymentIntentID: "pi_3Mtw" + strings.ReplaceAll(esc, "-", ""), AmountToCapture: 125000}
	mail = payloads.SendReleaseEmail{TransactionID: esc, RecipientEmail: "seller-" + esc + "@example.com", Amount: 125000, Currency: "USD"}
	hook = payloads.WebhookEscrowStatusChanged{EventID: "evt-" + esc + "-released", PartnerID: "partner-acme", TransactionID: esc,
		PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: "2026-11-29T10:00:00Z"}
	audit = payloads.AuditLogCreated{EventID: "evt-" + esc + "-audit", Actor: "user-1", Action: "escrow.released", TransactionID: esc, OccurredAt: "2026-11-29T10:00:00Z"}
	return capture, mail, hook, audit
}

// threeStepFlow is the throughput phase's flow of escrow esc: the capture,
// then the e-mail and the webhook after it.
func threeStepFlow(esc string) (*flows.Flow, error) {
	capture, mail, hook, _ := escrowSteps(esc)
	return flows.New("bench", esc).
		Step("capture", capture).
		Step("seller-email", mail, flows.After("capture")).
		Step("partner-webhook", hook, flows.After("capture")).
		Build()
}

// releaseFlow is the release flow of escrow esc as the service adds it:
// the capture, then the seller's e-mail and the partner's webhook, an
// independent audit, and an on-failure audit.
func releaseFlow(esc string) (*flows.Flow, error) {
	capture, mail, hook, audit := escrowSteps(esc)
	failAudit := payloads.AuditLogCreated{EventID: "evt-" + esc + "-release-failed", Actor: "system", Action: "escrow.release_failed", TransactionID: esc, OccurredAt: "2026-11-29T10:00:00Z"}
	return flows.New("release", esc).
		Step("capture", capture).
		Step("seller-email", mail, flows.After("capture")).
		Step("partner-webhook", hook, flows.After("capture")).
		Step("audit", audit).
		OnFailure("failure-audit", failAudit).
		Build()
}

// regularJobIDs are the job IDs of f's regular steps (not the on-failure
// ones, which run only when the flow fails).
func regularJobIDs(f *flows.Flow) []string {
	var ids []string
	for step, id := range f.JobIDs() {
		if !strings.HasPrefix(step, "failure-") {
			ids = append(ids, id)
		}
	}
	return ids
}

// startFlowWorker runs the worker as cmd/server does with flows: the
// flows' middleware first on the ServeMux, the worker told of dead-lettered
// steps, no-op adapters, around probe p (and recorder rec, when not nil).
// Both sides of the flow phases run it, plain jobs too (they pass through
// the middleware).
func (b *bench) startFlowWorker(p *probe, rec *recorder) (func(), error) {
	log := jobLogger()
	mux, err := noopMux(log)
	if err != nil {
		return nil, err
	}
	client := tasks.NewClient(b.opt)
	fl := flows.NewStore(client.Redis(), nil, flows.WithClient(client), flows.Logger(log))
	mux.Use(fl.Middleware(client))
	var h asynq.Handler = mux
	if rec != nil {
		h = rec.wrap(h)
	}
	w, err := worker.New(worker.Config{
		Redis: b.opt, Concurrency: b.cfg.k, FetchLoops: b.cfg.loops[0], PollInterval: b.cfg.pollInterval,
		FallbackPoll: b.cfg.fallbackPoll, DeadLetters: devmode.Discard{}, Logger: log, Flows: fl,
	}, p.wrap(h))
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	if err := w.Start(); err != nil {
		_ = client.Close()
		return nil, err
	}
	return func() { w.Shutdown(); _ = client.Close() }, nil
}

// flowFigure is one side of one round of the flow throughput phase: steps
// (jobs) per second from the first handler start to the last handler
// return, this process's CPU per step, and the Redis commands of the
// start/enqueue and of the processing.
type flowFigure struct {
	rate, cpu       float64
	enqueue, proc   []calls // commands by name, whole phase
	enqCmds, prCmds int64   // their totals
}

// flowPhase runs -rounds interleaved rounds of -flow-n three-step flows
// against the same 3 × -flow-n jobs enqueued at once, on the same worker.
func (b *bench) flowPhase(ctx context.Context, rep *report) error {
	for r := range b.cfg.rounds {
		tag := ""
		if b.cfg.rounds > 1 {
			tag = fmt.Sprintf(" (round %d/%d)", r+1, b.cfg.rounds)
		}
		sides := []func() error{
			func() error {
				f, err := b.flowRound(ctx, "flows"+tag, true)
				rep.flow = append(rep.flow, f)
				return err
			},
			func() error {
				f, err := b.flowRound(ctx, "jobs"+tag, false)
				rep.flowJobs = append(rep.flowJobs, f)
				return err
			},
		}
		if r%2 == 1 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, side := range sides {
			if err := side(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flowRound is one side: -flow-n flows started with flows.Start (asFlows)
// or their 3 × -flow-n jobs enqueued with tasks.Client, from -c
// goroutines, then drained by the flow worker; pprof labels side
// (flows, flow-jobs) and phase (enqueue, process).
func (b *bench) flowRound(ctx context.Context, label string, asFlows bool) (flowFigure, error) {
	var f flowFigure
	if err := b.adm.reset(ctx); err != nil {
		return f, err
	}
	n, steps := b.cfg.flowN, b.cfg.flowN*flowSteps
	nc := nonce()
	client := tasks.NewClient(b.opt)
	defer client.Close()
	var work []func(context.Context) error
	for i := range n {
		esc := fmt.Sprintf("esc-%s-%08d", nc, i)
		if asFlows {
			fl, err := threeStepFlow(esc)
			if err != nil {
				return f, err
			}
			work = append(work, func(ctx context.Context) error { _, err := flows.Start(ctx, client, fl); return err })
			continue
		}
		capture, mail, hook, _ := escrowSteps(esc)
		for _, p := range []payloads.Payload{capture, mail, hook} {
			work = append(work, func(ctx context.Context) error {
				t, err := tasks.New(p)
				if err != nil {
					return err
				}
				_, err = client.Enqueue(ctx, t)
				return err
			})
		}
	}
	s0, err := b.adm.commandStats(ctx)
	if err != nil {
		return f, err
	}
	side := "flow-jobs"
	if asFlows {
		side = "flows"
	}
	if err := labelled(ctx, side, "enqueue", func(ctx context.Context) error { return b.parallel(ctx, label+": start", work) }); err != nil {
		return f, err
	}
	s1, err := b.adm.commandStats(ctx)
	if err != nil {
		return f, err
	}
	p := newProbe(steps, false)
	runtime.GC()
	cpu0 := processCPU()
	var stop func()
	err = labelled(ctx, side, "process", func(context.Context) (err error) { stop, err = b.startFlowWorker(p, nil); return err })
	if err != nil {
		return f, err
	}
	bar := startProgress(b.stderr, b.cfg.progress, label+": process", steps)
	err = awaitDone(ctx, label, p, bar)
	bar.finish()
	cpu := processCPU() - cpu0
	stop()
	if err != nil {
		return f, err
	}
	s2, err := b.adm.commandStats(ctx)
	if err != nil {
		return f, err
	}
	f.rate = float64(steps) / p.elapsed().Seconds()
	f.cpu = float64(cpu/time.Duration(steps)) / float64(time.Microsecond)
	f.enqueue, f.proc = deltas(s0, s1), deltas(s1, s2)
	f.enqCmds, f.prCmds = total(f.enqueue), total(f.proc)
	if b.cfg.verbose {
		fmt.Fprintf(b.stderr, "%s: %.0f steps/s; CPU per step %s; Redis commands per step: start/enqueue %s; processing %s\n",
			label, f.rate, human(cpu/time.Duration(steps)), perJob(s0, s1, steps), perJob(s1, s2, steps))
	}
	return f, nil
}

func total(cs []calls) int64 {
	var n int64
	for _, c := range cs {
		n += c.n
	}
	return n
}

// parallel runs work from -c goroutines; the first error fails it.
func (b *bench) parallel(ctx context.Context, label string, work []func(context.Context) error) error {
	var (
		next     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	bar := startProgress(b.stderr, b.cfg.progress, label, len(work))
	defer bar.finish()
	for range b.cfg.c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(work) {
					return
				}
				if err := work[i](ctx); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				bar.add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("%s: %w", label, firstErr)
	}
	return ctx.Err()
}

// recorder notes when each job's handler started and returned, by job ID.
type recorder struct {
	mu      sync.Mutex
	started map[string]time.Time
	ended   map[string]time.Time
	changed chan struct{} // closed and replaced on every note
}

func newRecorder() *recorder {
	return &recorder{started: map[string]time.Time{}, ended: map[string]time.Time{}, changed: make(chan struct{})}
}

func (r *recorder) note(m map[string]time.Time, id string, at time.Time) {
	r.mu.Lock()
	m[id] = at
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// wrap records h's starts and returns. It goes outside the flows'
// middleware, so a step's return is after its flow advanced.
func (r *recorder) wrap(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		r.note(r.started, id, time.Now())
		err := h.ProcessTask(ctx, t)
		r.note(r.ended, id, time.Now())
		return err
	})
}

// await waits until every job of ids has started and returned, and
// returns the latest start.
func (r *recorder) await(ctx context.Context, ids []string) (time.Time, error) {
	timeout := time.NewTimer(stallTimeout)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		var last time.Time
		done := true
		for _, id := range ids {
			s, ok := r.started[id]
			_, ended := r.ended[id]
			if !ok || !ended {
				done = false
				break
			}
			if s.After(last) {
				last = s
			}
		}
		ch := r.changed
		r.mu.Unlock()
		if done {
			return last, nil
		}
		select {
		case <-ch:
		case <-timeout.C:
			return time.Time{}, fmt.Errorf("jobs %v did not all run within %s", ids, stallTimeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// latencyKind is one path measured by the flow latency phase.
type latencyKind int

const (
	latDirectJob  latencyKind = iota // tasks.Client.Enqueue → handler start
	latDirectFlow                    // flows.Start → last step's handler start
	latOutboxJob                     // outbox.Add, commit → handler start
	latOutboxFlow                    // flows.Add, commit → last step's handler start
	latKinds
)

var latencyLabels = [latKinds]string{
	latDirectJob:  "one job, Enqueue → handler start",
	latDirectFlow: "release flow, flows.Start → last step's handler start",
	latOutboxJob:  "one job, outbox commit → handler start",
	latOutboxFlow: "release flow, flows.Add commit → last step's handler start",
}

// latencyRound is one round of the flow latency phase: the samples of
// each path measured, sorted.
type latencyRound [latKinds]latencies

// flowLatencyPhase measures, on an idle flow worker (and an idle outbox
// relay when -outbox-db is given), -rounds rounds of -flow-samples samples
// of each path, the paths interleaved sample by sample in random order.
func (b *bench) flowLatencyPhase(ctx context.Context, rep *report) error {
	kinds := []latencyKind{latDirectJob, latDirectFlow}
	var pool *pgxpool.Pool
	if b.cfg.outboxDB != "" {
		db, err := openOutbox(ctx, b.cfg.outboxDB)
		if err != nil {
			return err
		}
		defer db.Close()
		pool = db.Pool()
		kinds = append(kinds, latOutboxJob, latOutboxFlow)
	}
	rep.latKinds = kinds
	for r := range b.cfg.rounds {
		label := "flow latency"
		if b.cfg.rounds > 1 {
			label = fmt.Sprintf("flow latency (round %d/%d)", r+1, b.cfg.rounds)
		}
		round, err := b.latencyRound(ctx, label, kinds, pool)
		if err != nil {
			return err
		}
		rep.latency = append(rep.latency, round)
	}
	return nil
}

// openOutbox connects to the outbox database, creates the outbox table if
// missing, and refuses a table that holds rows (the relay would move them
// into this Redis).
func openOutbox(ctx context.Context, url string) (*postgres.DB, error) {
	db, err := postgres.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("-outbox-db: %w", err)
	}
	if err := outbox.Migrate(ctx, db.Pool()); err != nil {
		db.Close()
		return nil, fmt.Errorf("-outbox-db: %w", err)
	}
	var n int64
	if err := db.Pool().QueryRow(ctx, "SELECT count(*) FROM "+outbox.Table).Scan(&n); err != nil {
		db.Close()
		return nil, fmt.Errorf("-outbox-db: %w", err)
	}
	if n > 0 {
		db.Close()
		return nil, fmt.Errorf("-outbox-db: table %s holds %d rows; loadgen's relay would move them into this Redis: use a database of its own", outbox.Table, n)
	}
	return db, nil
}

func (b *bench) latencyRound(ctx context.Context, label string, kinds []latencyKind, pool *pgxpool.Pool) (latencyRound, error) {
	var out latencyRound
	if err := b.adm.reset(ctx); err != nil {
		return out, err
	}
	rec := newRecorder()
	stop, err := b.startFlowWorker(newProbe(1<<62, false), rec)
	if err != nil {
		return out, err
	}
	defer stop()
	client := tasks.NewClient(b.opt)
	defer client.Close()
	if pool != nil {
		// The relay as cmd/server runs it: its defaults, woken by NOTIFY.
		relay, err := outbox.NewRelay(ctx, outbox.RelayConfig{DB: pool, Client: client})
		if err != nil {
			return out, err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = relay.Run(rctx) }()
		defer func() { cancel(); <-done }()
	}
	if err := sleep(ctx, idleSettle); err != nil {
		return out, err
	}
	nc := nonce()
	total := b.cfg.flowSamples * len(kinds)
	bar := startProgress(b.stderr, b.cfg.progress, label, total)
	defer bar.finish()
	var samples [latKinds][]time.Duration
	seq := 0
	for range b.cfg.flowSamples {
		order := slices.Clone(kinds)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, k := range order {
			esc := fmt.Sprintf("esc-%s-%08d", nc, seq)
			seq++
			d, err := b.latencySample(ctx, k, esc, client, pool, rec)
			if err != nil {
				return out, fmt.Errorf("%s: %s: %w", label, latencyLabels[k], err)
			}
			samples[k] = append(samples[k], d)
			bar.add(1)
			if err := sleep(ctx, b.cfg.idleGap/2+rand.N(b.cfg.idleGap)); err != nil {
				return out, err
			}
		}
	}
	for _, k := range kinds {
		out[k] = sorted(samples[k])
	}
	return out, nil
}

// latencySample is one sample of path k for escrow esc: from the enqueue
// call (direct) or the commit's return (outbox) to the start of the last
// job's handler, waiting until every job returned.
func (b *bench) latencySample(ctx context.Context, k latencyKind, esc string, client *tasks.Client, pool *pgxpool.Pool, rec *recorder) (time.Duration, error) {
	var (
		ids []string
		at  time.Time
	)
	switch k {
	case latDirectJob, latOutboxJob:
		capture, _, _, _ := escrowSteps(esc)
		t, err := tasks.New(capture)
		if err != nil {
			return 0, err
		}
		ids = []string{t.ID}
		if k == latDirectJob {
			at = time.Now()
			_, err = client.Enqueue(ctx, t)
		} else {
			at, err = commit(ctx, pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, t) })
		}
		if err != nil {
			return 0, err
		}
	case latDirectFlow, latOutboxFlow:
		f, err := releaseFlow(esc)
		if err != nil {
			return 0, err
		}
		ids = regularJobIDs(f)
		if k == latDirectFlow {
			at = time.Now()
			_, err = flows.Start(ctx, client, f)
		} else {
			at, err = commit(ctx, pool, func(tx pgx.Tx) error { return flows.Add(ctx, tx, f) })
		}
		if err != nil {
			return 0, err
		}
	default:
		return 0, errors.New("unknown latency path")
	}
	last, err := rec.await(ctx, ids)
	if err != nil {
		return 0, err
	}
	return last.Sub(at), nil
}

// commit runs add in a transaction and returns when its commit returned.
func commit(ctx context.Context, pool *pgxpool.Pool, add func(pgx.Tx) error) (time.Time, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return time.Time{}, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after the commit
	if err := add(tx); err != nil {
		return time.Time{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}
