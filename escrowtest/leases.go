package escrowtest

import (
	"context"
	"fmt"
	"testing"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// queues are the three queues every job lands in.
func queues() []string {
	return []string{payloads.QueueCritical, payloads.QueueDefault, payloads.QueueLow}
}

// NoLeases fails the test unless no job of any queue is active or holds a
// lease in Redis. asynq's recoverer reruns only jobs in a queue's lease set
// (asynq:{q}:lease, the jobs of asynq:{q}:active), so once both are empty
// and every job is completed, no lease recovery can run a job again: a
// "nothing doubled" count taken then is final, without waiting out the
// 30 s–2 min in which a recovery would otherwise show up.
func NoLeases(t testing.TB, opt asynq.RedisConnOpt) {
	t.Helper()
	if left := Leased(t, opt); len(left) > 0 {
		t.Errorf("asynq still holds active or leased jobs %v: its lease recoverer could run them again", left)
	}
}

// Leased lists, per queue, the active jobs and the lease set of asynq
// ("critical active 2", "default lease 1"); empty when there are none.
func Leased(t testing.TB, opt asynq.RedisConnOpt) []string {
	t.Helper()
	rc, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		t.Fatalf("redis option %T makes no go-redis client", opt)
	}
	defer rc.Close()
	ctx := context.Background()
	var left []string
	for _, q := range queues() {
		active, err := rc.LLen(ctx, asynqkey.Active(q)).Result()
		if err != nil {
			t.Fatalf("LLEN asynq:{%s}:active: %v", q, err)
		}
		leases, err := rc.ZCard(ctx, asynqkey.Lease(q)).Result()
		if err != nil {
			t.Fatalf("ZCARD asynq:{%s}:lease: %v", q, err)
		}
		if active > 0 {
			left = append(left, fmt.Sprintf("%s active %d", q, active))
		}
		if leases > 0 {
			left = append(left, fmt.Sprintf("%s lease %d", q, leases))
		}
	}
	return left
}
