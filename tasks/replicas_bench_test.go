package tasks_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/testenv"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// BenchmarkEnqueueWaitReplicas measures one goroutine's enqueue against a
// master with one in-sync replica on loopback, without and with
// WaitReplicas(1), in the same run (compare the two ns/op).
//
//	go test -run '^$' -bench EnqueueWaitReplicas -benchtime 2000x ./tasks/
func BenchmarkEnqueueWaitReplicas(b *testing.B) {
	master := testenv.StartRedis(b)
	testenv.StartRedis(b, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	rc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer rc.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, _ := rc.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("replica not in sync:\n%s", info)
		}
	}
	opt := asynq.RedisClientOpt{Addr: master.Addr()}
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
