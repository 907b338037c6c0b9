package tasks_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// BenchmarkEnqueueWebhookSequence measures webhook enqueues against a real
// Redis with the sequence taken at enqueue (assigned) and given in the
// payload (given: no counter), at b.SetParallelism 1 and 16 (times GOMAXPROCS goroutines); compare
// the ns/op of each pair. Events are spread over 100 escrows.
//
//	go test -run '^$' -bench EnqueueWebhookSequence -benchtime 5000x ./tasks/
func BenchmarkEnqueueWebhookSequence(b *testing.B) {
	u := peertest.Redis(b)
	opt, err := asynq.ParseRedisURI(u)
	if err != nil {
		b.Fatal(err)
	}
	client := tasks.NewClient(opt)
	defer client.Close()
	var n atomic.Int64 // event IDs unique across the runs
	event := func(seq int64) *tasks.Task {
		i := n.Add(1)
		task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
			EventID: fmt.Sprintf("evt-bench-%d", i), PartnerID: "acme", TransactionID: fmt.Sprintf("esc-bench-%d", i%100),
			PreviousStatus: payloads.StatusPending, Status: payloads.StatusFunded, OccurredAt: "2026-12-03T12:00:00Z", Sequence: seq,
		})
		if err != nil {
			b.Fatal(err)
		}
		return task
	}
	for _, par := range []int{1, 16} {
		for _, mode := range []struct {
			name string
			seq  int64
		}{{"assigned", 0}, {"given", 1}} {
			b.Run(fmt.Sprintf("%s/parallelism=%d", mode.name, par), func(b *testing.B) {
				jobs := make([]*tasks.Task, b.N)
				for i := range jobs {
					jobs[i] = event(mode.seq)
				}
				var next atomic.Int64
				b.SetParallelism(par)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := client.Enqueue(context.Background(), jobs[next.Add(1)-1]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
