package main

// Tracing overhead (SPEC §7: tracing on, no exporter configured, enqueue
// and processing ≥ 0.97 × tracing off):
//
//	go test -run '^$' -bench 'TracingOverhead' -benchtime 1x ./cmd/loadgen/
//
// Three configurations, in alternating rounds on one Redis:
//   - off: no TracerProvider at all (tasks.Client and observe.Observer
//     without one);
//   - noop: what a process gets when no OTEL_* variable is set
//     (observe.SetupTracing returns the no-op provider);
//   - sdk: the OpenTelemetry SDK, every span sampled and recorded, no
//     exporter (an upper bound: spans are built and dropped).
//
// Reported: jobs/s of each, and each ratio to off.

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest/sample"
	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

type tracingConfig struct {
	name string
	tp   func() trace.TracerProvider
}

func tracingConfigs(b *testing.B) []tracingConfig {
	return []tracingConfig{
		{"off", func() trace.TracerProvider { return nil }},
		{"noop", func() trace.TracerProvider {
			tp, _, err := observe.SetupTracing(context.Background(), func(string) string { return "" }, "bench")
			if err != nil {
				b.Fatal(err)
			}
			return tp
		}},
		{"sdk", func() trace.TracerProvider { return sdktrace.NewTracerProvider() }},
	}
}

// BenchmarkTracingOverhead measures enqueue (50 goroutines, typed
// constructor + Enqueue) and processing (the real worker, 4 fetch loops ×
// concurrency 50, the real mux with no-op adapters, the Observer with job
// metrics) in each configuration, rounds alternating.
func BenchmarkTracingOverhead(b *testing.B) {
	const rounds, enqueueN, processN = 3, 10000, 10000
	opt := benchRedis(b)
	configs := tracingConfigs(b)
	enq := map[string]time.Duration{}
	proc := map[string]time.Duration{}
	for range b.N {
		for r := range rounds {
			for i := range configs {
				c := configs[(i+r)%len(configs)] // a different order each round
				tp := c.tp()
				enq[c.name] += enqueueRound(b, opt, tp, enqueueN)
				proc[c.name] += processRound(b, opt, tp, processN)
			}
		}
	}
	total := float64(b.N * rounds)
	for _, c := range configs {
		b.ReportMetric(total*enqueueN/enq[c.name].Seconds(), "enqueue-"+c.name+"-jobs/s")
		b.ReportMetric(total*processN/proc[c.name].Seconds(), "process-"+c.name+"-jobs/s")
		if c.name != "off" {
			b.ReportMetric(enq["off"].Seconds()/enq[c.name].Seconds(), "enqueue-"+c.name+"/off")
			b.ReportMetric(proc["off"].Seconds()/proc[c.name].Seconds(), "process-"+c.name+"/off")
		}
	}
}

// enqueueRound enqueues n fresh jobs from 50 goroutines with a client
// traced by tp (nil: not traced) and returns the time taken.
func enqueueRound(b *testing.B, opt asynq.RedisConnOpt, tp trace.TracerProvider, n int) time.Duration {
	jobs := benchJobs(b, n)
	client := tracedClient(opt, tp)
	defer client.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t, err := sample.Build(jobs[i].p)
				if err == nil {
					_, err = client.Enqueue(context.Background(), t)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	flush(b, opt)
	return took
}

// processRound enqueues n jobs (traced by tp at the producer, untimed),
// then times the worker, observed with tp, draining them.
func processRound(b *testing.B, opt asynq.RedisConnOpt, tp trace.TracerProvider, n int) time.Duration {
	jobs := benchJobs(b, n)
	client := tracedClient(opt, tp)
	ctx := context.Background()
	if tp != nil {
		var span trace.Span
		ctx, span = tp.Tracer("bench").Start(ctx, "producer request")
		defer span.End()
	}
	for i := range jobs {
		if _, err := client.Enqueue(ctx, jobs[i].built); err != nil {
			b.Fatal(err)
		}
	}
	client.Close()

	var done atomic.Int64
	all := make(chan struct{})
	h := observed(b, benchMux(b), tp)
	counted := asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := h.ProcessTask(ctx, t)
		if done.Add(1) == int64(n) {
			close(all)
		}
		return err
	})
	dl, err := deadletter.OpenFile(b.TempDir() + "/dl.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	defer dl.Close()
	w, err := worker.New(worker.Config{Redis: opt, Concurrency: worker.DefaultConcurrency, FetchLoops: worker.DefaultFetchLoops, DeadLetters: dl, Logger: jobLogger()}, counted)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("processed %d of %d jobs in 5 minutes", done.Load(), n)
	}
	took := time.Since(start)
	w.Shutdown()
	flush(b, opt)
	return took
}

// tracedClient is a client traced by tp (nil: not traced).
func tracedClient(opt asynq.RedisConnOpt, tp trace.TracerProvider) *tasks.Client {
	var opts []tasks.ClientOption
	if tp != nil {
		opts = append(opts, tasks.WithTracerProvider(tp))
	}
	return tasks.NewClient(opt, opts...)
}

// observed is h under an Observer with job metrics (in a registry of its
// own) and tracing by tp.
func observed(b *testing.B, h asynq.Handler, tp trace.TracerProvider) asynq.Handler {
	jm, err := observe.NewJobMetrics(prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	return observe.NewObserver(jm, tp).Wrap(h)
}

// flush empties the benchmark's Redis between rounds.
func flush(b *testing.B, opt asynq.RedisConnOpt) {
	rc := opt.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	if err := rc.FlushDB(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkTracedDispatch is the handler path of one job in memory (no
// Redis, so steady on a busy machine): the real mux and typed adapter with
// no-op adapters, under the Observer (job metrics on) with each tracing
// configuration. The tasks carry the headers a producer with the same
// configuration gives them.
func BenchmarkTracedDispatch(b *testing.B) {
	mux := benchMux(b)
	for _, c := range tracingConfigs(b) {
		b.Run("tracing="+c.name, func(b *testing.B) {
			h, ts := tracedDispatch(b, mux, c.tp())
			dispatch(b, h, ts)
		})
	}
}

// tracedDispatch is the observed mux of tp and nine tasks with the headers
// a producer traced by tp gives them.
func tracedDispatch(b *testing.B, mux asynq.Handler, tp trace.TracerProvider) (asynq.Handler, []*asynq.Task) {
	h := observed(b, mux, tp)
	tr := tasks.NewTracing(tp)
	var ts []*asynq.Task
	for _, j := range benchJobs(b, 9) {
		headers := map[string]string{tasks.HeaderReadyAt: "1"}
		ctx, span := tr.Start(context.Background(), j.built)
		tr.Inject(ctx, headers)
		span.End()
		ts = append(ts, asynq.NewTaskWithHeaders(j.typ, j.raw, headers))
	}
	return h, ts
}

// BenchmarkTracedDispatchRatio runs the three configurations of
// BenchmarkTracedDispatch in 60 interleaved slices of 1,000 jobs each, so
// that a busy machine slows them alike, and reports each ratio to off
// (jobs/s, higher is better).
func BenchmarkTracedDispatchRatio(b *testing.B) {
	mux := benchMux(b)
	configs := tracingConfigs(b)
	type setup struct {
		h  asynq.Handler
		ts []*asynq.Task
	}
	var setups []setup
	for _, c := range configs {
		h, ts := tracedDispatch(b, mux, c.tp())
		setups = append(setups, setup{h, ts})
	}
	took := make([]time.Duration, len(configs))
	ctx := context.Background()
	for range b.N {
		for slice := range 60 {
			for k := range configs {
				i := (k + slice) % len(configs)
				start := time.Now()
				for j := range 1000 {
					if err := setups[i].h.ProcessTask(ctx, setups[i].ts[j%9]); err != nil {
						b.Fatal(err)
					}
				}
				took[i] += time.Since(start)
			}
		}
	}
	for i, c := range configs {
		b.ReportMetric(float64(b.N*60*1000)/took[i].Seconds(), c.name+"-jobs/s")
		if i > 0 {
			b.ReportMetric(took[0].Seconds()/took[i].Seconds(), c.name+"/off")
		}
	}
}

// BenchmarkObserverOnly is the Observer's own cost per attempt around a
// handler that does nothing (job metrics on in every configuration): what
// tracing adds to each job, in nanoseconds, whatever the handler costs.
func BenchmarkObserverOnly(b *testing.B) {
	nothing := asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })
	for _, c := range tracingConfigs(b) {
		b.Run("tracing="+c.name, func(b *testing.B) {
			t := asynq.NewTaskWithHeaders("send_release_email", nil, map[string]string{tasks.HeaderReadyAt: "1"})
			dispatch(b, observed(b, nothing, c.tp()), []*asynq.Task{t})
		})
	}
}
