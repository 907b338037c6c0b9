package tasks_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// A Redis that accepts connections and never answers must not hold Enqueue
// past its two-second deadline.
func TestEnqueueToAHungRedisGivesUpWithinTwoSeconds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, answer nothing
		}
	}()
	c := tasks.NewClient(asynq.RedisClientOpt{Addr: ln.Addr().String(), ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	defer c.Close()
	task, err := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "hung", Actor: "ops", Action: "x", OccurredAt: "2026-01-01T00:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Enqueue(context.Background(), task)
	if took := time.Since(start); err == nil || took > 2500*time.Millisecond {
		t.Errorf("got err %v after %v, want an error within ~2 s", err, took)
	}
}
