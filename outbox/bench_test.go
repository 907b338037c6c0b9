package outbox_test

// Benchmarks for SPEC §7's outbox targets, measured against direct typed
// enqueue on the same Redis in the same run:
//
//	go test -run '^$' -bench . -benchtime 3x ./outbox/
//
// BenchmarkCommitToPending: commit → job pending p99 on an idle relay
// (target ≤ 50 ms). BenchmarkRelayThroughput: relay jobs/s as a ratio to
// tasks.Client.Enqueue from 50 goroutines (target ≥ 0.9).

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/jackc/pgx/v5"
)

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkCommitToPending measures, per iteration, one transaction adding
// one job: from the commit's return to the job being pending in Redis. The
// relay is idle between iterations (it waits for NOTIFY; its poll interval
// is the default 1 s, so a missed wake-up shows as a ~1 s outlier). The
// same run measures a direct Enqueue's latency for reference.
func BenchmarkCommitToPending(b *testing.B) {
	e := setup(b, "")
	e.startRelay(b, outbox.RelayConfig{})
	ctx := context.Background()
	var lat, direct []time.Duration
	b.ResetTimer()
	for i := range b.N {
		task := audit(b, fmt.Sprintf("evt-lat-%d", i))
		if err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, task) }); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		key := "asynq:{low}:t:" + task.ID
		for {
			if n, err := e.rdb.Exists(ctx, key).Result(); err != nil {
				b.Fatal(err)
			} else if n == 1 {
				break
			}
			if time.Since(committed) > 10*time.Second {
				b.Fatalf("job %s not pending 10 s after commit", task.ID)
			}
			time.Sleep(100 * time.Microsecond)
		}
		lat = append(lat, time.Since(committed))

		d := audit(b, fmt.Sprintf("evt-direct-%d", i))
		start := time.Now()
		if _, err := e.client.Enqueue(ctx, d); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(percentile(direct, 0.99).Microseconds())/1000, "direct-p99-ms")
}

// BenchmarkRelayThroughput relays rows already committed (20,000 per
// iteration, added 500 per transaction) with one relay at its defaults, then
// enqueues as many typed jobs directly from 50 goroutines into the same
// (flushed) Redis, and reports both rates and their ratio. Run it with
// -benchtime 5x or more: each iteration is one relay/direct pair.
func BenchmarkRelayThroughput(b *testing.B) {
	const n, perTx, goroutines = 20000, 500, 50
	e := setup(b, "")
	ctx := context.Background()
	var relayRate, directRate, ratios []float64
	for it := range b.N {
		b.StopTimer()
		if err := e.rdb.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i += perTx {
			batch := make([]*tasks.Task, 0, perTx)
			for j := i; j < i+perTx; j++ {
				batch = append(batch, audit(b, fmt.Sprintf("evt-r%d-%05d", it, j)))
			}
			if err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, batch...) }); err != nil {
				b.Fatal(err)
			}
		}
		r, err := outbox.NewRelay(ctx, outbox.RelayConfig{DB: e.db, Client: e.client})
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		b.StartTimer()
		start := time.Now()
		done := make(chan struct{})
		go func() { defer close(done); _ = r.Run(rctx) }()
		for r.Counts().Enqueued < n {
			time.Sleep(200 * time.Microsecond)
		}
		relayRate = append(relayRate, n/time.Since(start).Seconds())
		cancel()
		<-done

		b.StopTimer()
		if err := e.rdb.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		direct := make([]*tasks.Task, n) // built inside the timed part, as a caller does
		b.StartTimer()
		start = time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					task, err := tasks.NewAuditLogCreatedTask(auditPayload(fmt.Sprintf("evt-d%d-%05d", it, i)))
					if err != nil {
						panic(err)
					}
					direct[i] = task
					if _, err := e.client.Enqueue(ctx, task); err != nil {
						panic(err)
					}
				}
			}()
		}
		wg.Wait()
		directRate = append(directRate, n/time.Since(start).Seconds())
		ratios = append(ratios, relayRate[it]/directRate[it])
	}
	b.StopTimer()
	// Medians; the ratio is the median of each iteration's paired ratio, so
	// a burst of load from other processes skews one pair, not the result.
	median := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(median(relayRate), "relay-jobs/s")
	b.ReportMetric(median(directRate), "direct-jobs/s")
	b.ReportMetric(median(ratios), "ratio")
}
