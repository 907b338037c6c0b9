package main

// Benchmarks of the typed layer against raw asynq (BENCHMARKS.md):
//
//	go test -run '^$' -bench . -benchmem ./cmd/loadgen/
//
// Enqueue benchmarks start their own redis-server (peertest); the
// dispatch and validation benchmarks need no Redis.

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/escrowtest/sample"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// benchSeq numbers the payloads of every benchmark run in this process, so
// no job ID repeats however often the framework reruns a benchmark.
var benchSeq atomic.Int64

// benchJob is one job for either client: the typed payload, and its JSON
// and job ID for raw asynq (same payload size, same ID length).
type benchJob struct {
	p     payloads.Payload
	typ   string
	raw   []byte
	id    string
	built *tasks.Task // p's task, built before the clock starts
}

func benchJobs(b *testing.B, n int) []benchJob {
	b.Helper()
	out := make([]benchJob, n)
	for i := range out {
		n := benchSeq.Add(1)
		p := sample.Payload(int(n), fmt.Sprintf("b%09d", n))
		raw, err := json.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		built, err := sample.Build(p)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = benchJob{p: p, typ: p.TaskType(), raw: raw, id: tasks.JobID(p, ""), built: built}
	}
	return out
}

// benchRedis is a private Redis for one benchmark.
func benchRedis(b *testing.B) asynq.RedisConnOpt {
	b.Helper()
	return escrowtest.RedisOpt(b, map[string]string{"REDIS_URL": peertest.Redis(b)})
}

// benchMux is the real ServeMux with no-op adapters and the production
// logger (noopMux), as the loadgen worker runs it.
func benchMux(b *testing.B) *asynq.ServeMux {
	b.Helper()
	mux, err := noopMux(jobLogger())
	if err != nil {
		b.Fatal(err)
	}
	return mux
}

// nine is the sample payload of each job type, in the registry's order.
func nine() []payloads.Payload {
	out := make([]payloads.Payload, len(tasks.Types()))
	for i := range out {
		out[i] = sample.Payload(i, fmt.Sprintf("b%09d", i))
	}
	return out
}

// dispatch has h process ts round-robin, one task per iteration.
func dispatch(b *testing.B, h asynq.Handler, ts []*asynq.Task) {
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := h.ProcessTask(ctx, ts[i%len(ts)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// perType runs op on the sample payload of each job type, one
// sub-benchmark per type.
func perType(b *testing.B, op func(payloads.Payload) error) {
	for _, p := range nine() {
		b.Run(p.TaskType(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := op(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchEnqueue runs enqueue over b.N fresh jobs from the given number of
// goroutines (1: a plain loop, which also reports the p50 and p99 latency
// of one enqueue).
func benchEnqueue(b *testing.B, goroutines int, enqueue func(ctx context.Context, j *benchJob) error) {
	jobs := benchJobs(b, b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	if goroutines == 1 {
		took := make([]time.Duration, len(jobs))
		for i := range jobs {
			start := time.Now()
			if err := enqueue(ctx, &jobs[i]); err != nil {
				b.Fatal(err)
			}
			took[i] = time.Since(start)
		}
		b.StopTimer()
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
		return
	}
	var next atomic.Int64
	b.SetParallelism((goroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := enqueue(ctx, &jobs[next.Add(1)-1]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEnqueue compares the typed constructor + validation + enqueue
// with raw asynq.Client.Enqueue of the same payload bytes with a TaskID.
func BenchmarkEnqueue(b *testing.B) {
	opt := benchRedis(b)
	typed := tasks.NewClient(opt)
	defer typed.Close()
	raw := asynq.NewClient(opt)
	defer raw.Close()
	enqueueTyped := func(ctx context.Context, j *benchJob) error {
		t, err := sample.Build(j.p)
		if err != nil {
			return err
		}
		_, err = typed.Enqueue(ctx, t)
		return err
	}
	enqueueRaw := func(ctx context.Context, j *benchJob) error {
		_, err := raw.EnqueueContext(ctx, asynq.NewTask(j.typ, j.raw, asynq.TaskID(j.id)))
		return err
	}
	// Attribution: the typed constructor with raw asynq's client, and
	// tasks.Client with tasks built before the clock starts.
	constructorOnly := func(ctx context.Context, j *benchJob) error {
		t, err := sample.Build(j.p)
		if err != nil {
			return err
		}
		_, err = raw.EnqueueContext(ctx, t.Task)
		return err
	}
	clientOnly := func(ctx context.Context, j *benchJob) error {
		_, err := typed.Enqueue(ctx, j.built)
		return err
	}
	for _, g := range []int{1, 50} {
		b.Run(fmt.Sprintf("typed/goroutines=%d", g), func(b *testing.B) { benchEnqueue(b, g, enqueueTyped) })
		b.Run(fmt.Sprintf("raw/goroutines=%d", g), func(b *testing.B) { benchEnqueue(b, g, enqueueRaw) })
		b.Run(fmt.Sprintf("typed-constructor+raw-client/goroutines=%d", g), func(b *testing.B) { benchEnqueue(b, g, constructorOnly) })
		b.Run(fmt.Sprintf("prebuilt+typed-client/goroutines=%d", g), func(b *testing.B) { benchEnqueue(b, g, clientOnly) })
	}
}

// BenchmarkDispatch compares the handler path of one job (the ServeMux with
// its logging middleware, the typed adapter's decode and validation, the
// handler, a no-op adapter; one JSON log line, written to io.Discard) with
// a raw no-op asynq handler, and with a raw handler that only decodes.
// No Redis: the asynq.Task is built in memory.
func BenchmarkDispatch(b *testing.B) {
	mux := benchMux(b)
	var ts []*asynq.Task
	for _, p := range nine() {
		raw, _ := json.Marshal(p)
		ts = append(ts, asynq.NewTask(p.TaskType(), raw))
	}
	b.Run("typed", func(b *testing.B) { dispatch(b, mux, ts) })
	b.Run("raw-noop", func(b *testing.B) {
		dispatch(b, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }), ts)
	})
	b.Run("raw-unmarshal", func(b *testing.B) {
		dispatch(b, asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
			var m map[string]any
			return json.Unmarshal(t.Payload(), &m)
		}), ts)
	})
	for _, t := range ts {
		b.Run("typed/"+t.Type(), func(b *testing.B) { dispatch(b, mux, []*asynq.Task{t}) })
	}
}

// BenchmarkValidate is payloads.Validate alone, per type.
func BenchmarkValidate(b *testing.B) { perType(b, payloads.Validate) }

// BenchmarkNew is the typed constructor alone (validate, encode, options),
// per type: the part of a typed enqueue that raw asynq does not do.
func BenchmarkNew(b *testing.B) {
	perType(b, func(p payloads.Payload) error {
		_, err := sample.Build(p)
		return err
	})
}
