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

func ExampleWakeChannel() {
	fmt.Println(tasks.WakeChannel(payloads.QueueCritical))
	// Output:
	// escrowjobs:wake:{critical}
}

func redisOpt(t *testing.T, u string) (*redis.Client, func() *tasks.Client) {
	t.Helper()
	opt, err := tasks.RedisFromEnv(func(k string) string { return map[string]string{"REDIS_URL": u}[k] })
	if err != nil {
		t.Fatal(err)
	}
	ro, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return redis.NewClient(ro), func() *tasks.Client { return tasks.NewClient(opt) }
}

// Every enqueue is announced on its queue's channel: "p" for a pending
// job, "s" and the due Unix second for a scheduled one; the messages
// arrive after the job is stored (same pipeline, after the script).
func TestEnqueueAnnouncesTheJobOnItsQueue(t *testing.T) {
	rc, newClient := redisOpt(t, peertest.Redis(t))
	defer rc.Close()
	ctx := context.Background()
	sub := rc.Subscribe(ctx, tasks.WakeChannel("critical"), tasks.WakeChannel("default"), tasks.WakeChannel("low"))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the first confirmation
		t.Fatal(err)
	}
	for range 2 {
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient()
	defer c.Close()
	capture, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-wake", PaymentIntentID: "pi_wake"})
	if err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(90 * time.Second)
	audit, err := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "evt-wake", Actor: "user-1", Action: "escrow.released", OccurredAt: "2026-11-29T10:00:00Z"},
		tasks.ProcessAt(due))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ channel, payload, key string }{
		{tasks.WakeChannel("critical"), "p", "asynq:{critical}:pending"},
		{tasks.WakeChannel("low"), "s" + strconv.FormatInt(due.Unix(), 10), "asynq:{low}:scheduled"},
	}
	for i, task := range []*tasks.Task{capture, audit} {
		if _, err := c.Enqueue(ctx, task); err != nil {
			t.Fatal(err)
		}
		// The script may be new to this Redis: EVALSHA fails NOSCRIPT,
		// then EVAL stores the job, each with its announcement.
		for {
			m, err := sub.ReceiveTimeout(ctx, 10*time.Second)
			if err != nil {
				t.Fatalf("announcement %d: %v", i, err)
			}
			msg, ok := m.(*redis.Message)
			if !ok || i > 0 && msg.Channel == want[i-1].channel && msg.Payload == want[i-1].payload {
				continue // not a message, or the previous job's second announcement
			}
			if msg.Channel != want[i].channel || msg.Payload != want[i].payload {
				t.Fatalf("announcement %d: got %s %q, want %s %q", i, msg.Channel, msg.Payload, want[i].channel, want[i].payload)
			}
			n, err := rc.Exists(ctx, want[i].key).Result()
			if err != nil || n != 1 {
				t.Fatalf("announcement %d arrived but %s does not exist yet (%d, %v)", i, want[i].key, n, err)
			}
			if s, _ := rc.PubSubNumSub(ctx, want[i].channel).Result(); s[want[i].channel] != 1 {
				t.Fatalf("subscribers of %s: got %v", want[i].channel, s)
			}
			ids, _ := rc.LRange(ctx, "asynq:{critical}:pending", 0, -1).Result()
			if i == 0 && (len(ids) != 1 || ids[0] != capture.ID) {
				t.Fatalf("pending: got %v, want [%s]", ids, capture.ID)
			}
			break
		}
	}
}

// A Redis user that may not publish (Redis 7 ACLs deny channels unless
// granted) still enqueues: the announcement fails alone, and workers find
// the job by polling.
func TestEnqueueSucceedsWhenPublishIsDenied(t *testing.T) {
	rc, _ := redisOpt(t, peertest.Redis(t))
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Do(ctx, "ACL", "SETUSER", "producer", "on", ">s3cret", "~*", "+@all", "resetchannels").Err(); err != nil {
		t.Fatal(err)
	}
	// asynq.ParseRedisURI (so RedisFromEnv) drops a URL's user name: build
	// the options by hand.
	prc := redis.NewClient(&redis.Options{Addr: rc.Options().Addr, Username: "producer", Password: "s3cret"})
	defer prc.Close()
	if err := prc.Publish(ctx, tasks.WakeChannel("critical"), "p").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("PUBLISH as producer: got %v, want a NOPERM error (the test's premise)", err)
	}
	c := tasks.NewClient(asynq.RedisClientOpt{Addr: rc.Options().Addr, Username: "producer", Password: "s3cret"})
	defer c.Close()
	task, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-acl", PaymentIntentID: "pi_acl"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Enqueue(ctx, task)
	if err != nil || id != task.ID {
		t.Fatalf("enqueue: got %q, %v; want %q, nil", id, err, task.ID)
	}
	ids, err := rc.LRange(ctx, "asynq:{critical}:pending", 0, -1).Result()
	if err != nil || len(ids) != 1 || ids[0] != task.ID {
		t.Errorf("pending: got %v (%v), want [%s]", ids, err, task.ID)
	}
	if _, err := c.Enqueue(ctx, task); !errors.Is(err, tasks.ErrDuplicate) {
		t.Errorf("second enqueue: got %v, want ErrDuplicate", err)
	}
}
