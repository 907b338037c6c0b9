package flows_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
)

// With WaitReplicas a flow's state change succeeds only once that many
// replicas acknowledged it: with one replica in sync, a flow starts and
// a step fails; asking for two, Start and Failed return an error that
// errors.Is tasks.ErrNotReplicated within their deadline.
func TestWaitReplicasAcknowledgesEveryStateChange(t *testing.T) {
	master := peertest.StartRedis(t)
	peertest.StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	rc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer rc.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, _ := rc.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not in sync:\n%s", info)
		}
	}
	e := setup(t, map[string]string{"REDIS_URL": master.URL()})
	ctx := context.Background()

	one := build(t, release("esc-wait-1"))
	if _, err := flows.Start(ctx, e.client, one, flows.WaitReplicas(1)); err != nil {
		t.Fatalf("Start waiting for 1 replica: %v", err)
	}
	waiting := flows.NewStore(e.rc, e.insp, flows.WaitReplicas(1), flows.WithClient(e.client))
	if err := waiting.Failed(ctx, one.ID(), "capture", "declined"); err != nil {
		t.Fatalf("Failed waiting for 1 replica: %v", err)
	}

	two := build(t, release("esc-wait-2"))
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	began := time.Now()
	if _, err := flows.Start(sctx, e.client, two, flows.WaitReplicas(2)); !errors.Is(err, tasks.ErrNotReplicated) {
		t.Errorf("Start waiting for 2 replicas: got %v, want ErrNotReplicated", err)
	}
	if d := time.Since(began); d > 1500*time.Millisecond {
		t.Errorf("Start waiting for 2 replicas took %v, more than its deadline", d)
	}
	tooMany := flows.NewStore(e.rc, e.insp, flows.WaitReplicas(2))
	fctx, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if err := tooMany.Requeued(fctx, one.ID(), "capture"); !errors.Is(err, tasks.ErrNotReplicated) {
		t.Errorf("Requeued waiting for 2 replicas: got %v, want ErrNotReplicated", err)
	}
}
