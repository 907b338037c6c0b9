package tasks_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// BenchmarkEnqueueWaitReplicas measures one goroutine's enqueue against a
// master with one in-sync replica on loopback, without and with
// WaitReplicas(1), in the same run (compare the two ns/op).
//
//	go test -run '^$' -bench EnqueueWaitReplicas -benchtime 2000x ./tasks/
func BenchmarkEnqueueWaitReplicas(b *testing.B) {
	opt := asynq.RedisClientOpt{Addr: startReplicated(b).Addr()}
	seq := 0 // job IDs unique across the benchmark's runs
	for _, n := range []int{0, 1} {
		b.Run(fmt.Sprintf("wait=%d", n), func(b *testing.B) {
			client := tasks.NewClient(opt, tasks.WaitReplicas(n))
			defer client.Close()
			jobs := make([]*tasks.Task, b.N)
			for i := range jobs {
				seq++
				jobs[i] = auditTask(b, fmt.Sprintf("bench-%d", seq))
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := client.Enqueue(context.Background(), jobs[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
