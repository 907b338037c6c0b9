package tasks_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// A Redis that accepts connections and never answers must not hold Enqueue
// past its two-second deadline: the call ends by Enqueue's own deadline
// (context.DeadlineExceeded), long before the Redis client's 10 s read
// timeout would. How long it takes is BenchmarkEnqueueToAHungRedis.
func TestEnqueueToAHungRedisGivesUpWithinTwoSeconds(t *testing.T) {
	opt := hungRedis(t)
	c := tasks.NewClient(opt)
	defer c.Close()
	start := time.Now()
	_, err := c.Enqueue(context.Background(), hungTask(t))
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took >= opt.ReadTimeout {
		t.Errorf("got err %v after %v, want context.DeadlineExceeded (EnqueueTimeout %v) before the read timeout %v", err, took, tasks.EnqueueTimeout, opt.ReadTimeout)
	}
}

// BenchmarkEnqueueToAHungRedis: how long Enqueue holds against a Redis
// that never answers (about tasks.EnqueueTimeout).
func BenchmarkEnqueueToAHungRedis(b *testing.B) {
	c := tasks.NewClient(hungRedis(b))
	defer c.Close()
	task := hungTask(b)
	for b.Loop() {
		if _, err := c.Enqueue(context.Background(), task); err == nil {
			b.Fatal("want an error")
		}
	}
}

func hungTask(t testing.TB) *tasks.Task {
	t.Helper()
	task, err := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "hung", Actor: "ops", Action: "x", OccurredAt: "2026-01-01T00:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// hungRedis is a Redis that accepts connections and never answers.
func hungRedis(t testing.TB) asynq.RedisClientOpt {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, answer nothing
		}
	}()
	return asynq.RedisClientOpt{Addr: ln.Addr().String(), ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
}

// Every Inspector call gives up when its context ends, also against a
// Redis that never answers (asynq's Inspector takes no context).
func TestInspectorOnAHungRedisGivesUpAtTheDeadline(t *testing.T) {
	in := tasks.NewInspector(hungRedis(t))
	defer in.Close()
	ledger := escrowtest.Ledger(t, "file")
	if _, err := ledger.Record(context.Background(), deadletter.Entry{ID: "audit_log_created:audit-x", Type: "audit_log_created", Queue: "low", Payload: []byte(`{}`), FailedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	d := repair.NewDesk(in, ledger)
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Status", func(ctx context.Context) error { _, err := in.Status(ctx, "audit_log_created:audit-x"); return err }},
		{"Stats", func(ctx context.Context) error { _, err := in.Stats(ctx); return err }},
		{"DeadLetters.Requeue", func(ctx context.Context) error {
			_, err := d.Requeue(ctx, "audit_log_created:audit-x", "t", "")
			return err
		}},
		{"DeadLetters.Get of a job only asynq may hold", func(ctx context.Context) error { _, err := d.Get(ctx, "audit_log_created:audit-y"); return err }},
	}
	for _, c := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		err := c.call(ctx)
		took := time.Since(start)
		cancel()
		// The context's deadline ended it, not the client's 10 s read timeout.
		if !errors.Is(err, context.DeadlineExceeded) || took >= 10*time.Second {
			t.Errorf("%s: got err %v after %v, want context.DeadlineExceeded from the 0.5 s context (the Redis client's read timeout is 10 s)", c.name, err, took)
		}
	}
}
