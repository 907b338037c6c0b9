package partner_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
)

// BenchmarkOrderedDelivery measures, in one run, what ordering costs:
// enqueue and delivery throughput of the same workload (benchEvents
// events spread over benchEscrows escrows, enqueued before the worker
// starts, so every later event of an escrow meets an earlier one still
// open) to an ordered and to an unordered partner, each on its own Redis
// with one worker (concurrency 8) and a loopback receiver.
//
//	go test -run '^$' -bench BenchmarkOrderedDelivery -benchtime 1x -count 3 ./partner/
func BenchmarkOrderedDelivery(b *testing.B) {
	const benchEvents, benchEscrows = 2000, 100
	for _, ordered := range []bool{false, true} {
		name := "unordered"
		if ordered {
			name = "ordered"
		}
		b.Run(name, func(b *testing.B) {
			var enqueue, deliver time.Duration
			for i := range b.N {
				w := newOrderWorld(b, localRedis(b), ordered, time.Hour)
				start := time.Now()
				for n := range benchEvents {
					w.event(fmt.Sprintf("evt-%d-%d", i, n), fmt.Sprintf("esc-%d-%d", i, n%benchEscrows))
				}
				enqueue += time.Since(start)
				start = time.Now()
				w.startWorker()
				escrowtest.Eventually(b, "every delivery", 5*time.Minute, func() bool { return w.recv.DeliveredCount() >= benchEvents })
				deliver += time.Since(start)
				if ordered {
					for e := range benchEscrows {
						ids := []string{}
						for n := e; n < benchEvents; n += benchEscrows {
							ids = append(ids, fmt.Sprintf("evt-%d-%d", i, n))
						}
						w.checkInOrder(ids...)
					}
				}
			}
			b.ReportMetric(float64(b.N*benchEvents)/enqueue.Seconds(), "enqueues/s")
			b.ReportMetric(float64(b.N*benchEvents)/deliver.Seconds(), "deliveries/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
