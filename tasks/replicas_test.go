package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func auditTask(t testing.TB, id string, opts ...tasks.Option) *tasks.Task {
	t.Helper()
	task, err := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: id, Actor: "ops", Action: "escrow.released", OccurredAt: "2026-11-29T10:00:00Z"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// startReplicated starts a master with one replica and returns the master
// once the replica is in sync with it.
func startReplicated(t testing.TB) *peertest.RedisServer {
	t.Helper()
	master := peertest.StartRedis(t)
	peertest.StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	rc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer rc.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, _ := rc.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			return master
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not in sync within 20 s:\n%s", info)
		}
	}
}

// TestWaitReplicas: with WaitReplicas(n), Enqueue succeeds only when n
// replicas acknowledged the job; otherwise it returns the job ID and an
// error that says the job may not be durable. The WAIT runs on the
// connection (and, on a Cluster, the shard) that wrote the job.
func TestWaitReplicas(t *testing.T) {
	master := startReplicated(t)
	lone := peertest.StartRedis(t)
	cluster := peertest.StartCluster(t)
	masterOpt := asynq.RedisClientOpt{Addr: master.Addr()}
	cases := []struct {
		name    string
		opt     asynq.RedisConnOpt
		wait    int
		delay   bool // a scheduled job (asynq's schedule script)
		wantErr bool
	}{
		{"one replica, wait for it", masterOpt, 1, false, false},
		{"one replica, wait for it, scheduled job", masterOpt, 1, true, false},
		{"one replica, wait for two", masterOpt, 2, false, true},
		{"no replica, no waiting", asynq.RedisClientOpt{Addr: lone.Addr()}, 0, false, false},
		{"no replica, wait for one", asynq.RedisClientOpt{Addr: lone.Addr()}, 1, false, true},
		{"cluster shard without replica, wait for one", asynq.RedisClusterClientOpt{Addrs: cluster.Addrs}, 1, false, true},
		{"cluster, no waiting", asynq.RedisClusterClientOpt{Addrs: cluster.Addrs}, 0, false, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client := tasks.NewClient(c.opt, tasks.WaitReplicas(c.wait))
			defer client.Close()
			var opts []tasks.Option
			if c.delay {
				opts = append(opts, tasks.ProcessIn(time.Hour))
			}
			task := auditTask(t, fmt.Sprintf("evt-wait-%d", i), opts...)
			start := time.Now()
			id, err := client.Enqueue(context.Background(), task)
			took := time.Since(start)
			if id != task.ID {
				t.Errorf("got ID %q, want %q", id, task.ID)
			}
			if !c.wantErr {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tasks.ErrNotReplicated) || !strings.Contains(err.Error(), task.ID) || !strings.Contains(err.Error(), "may not be durable") {
				t.Errorf("got %v, want ErrNotReplicated naming %s and saying it may not be durable", err, task.ID)
			}
			t.Logf("gave up after %v (budget %v)", took.Round(time.Millisecond), tasks.EnqueueTimeout)
			// The job is on the master, but a duplicate is reported only
			// once it is on the replicas too: still not durable.
			if _, err := client.Enqueue(context.Background(), task); !errors.Is(err, tasks.ErrNotReplicated) || errors.Is(err, tasks.ErrDuplicate) {
				t.Errorf("again: got %v, want ErrNotReplicated (not ErrDuplicate)", err)
			}
			plain := tasks.NewClient(c.opt)
			defer plain.Close()
			if _, err := plain.Enqueue(context.Background(), task); !errors.Is(err, tasks.ErrDuplicate) {
				t.Errorf("again without waiting: got %v, want ErrDuplicate (the master holds it)", err)
			}
		})
	}
}

func TestClientOptionsFromEnv(t *testing.T) {
	for _, c := range []struct {
		val     string
		wantN   int
		wantErr bool
	}{{"", 0, false}, {"2", 1, false}, {" 0 ", 1, false}, {"-1", 0, true}, {"two", 0, true}, {"1000", 0, true}} {
		opts, err := tasks.ClientOptionsFromEnv(func(k string) string {
			if k == "REDIS_WAIT_REPLICAS" {
				return c.val
			}
			return ""
		})
		switch {
		case c.wantErr && (err == nil || !strings.Contains(err.Error(), "REDIS_WAIT_REPLICAS")):
			t.Errorf("%q: got %v, want an error naming REDIS_WAIT_REPLICAS", c.val, err)
		case !c.wantErr && (err != nil || len(opts) != c.wantN):
			t.Errorf("%q: got (%d options, %v), want (%d, nil)", c.val, len(opts), err, c.wantN)
		}
	}
}
