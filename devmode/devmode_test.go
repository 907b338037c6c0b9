package devmode

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestDemoEventsAreValidAndSomeFail(t *testing.T) {
	types := map[string]bool{}
	var transient, permanent int
	for n := 0; n < 20; n++ {
		ts, err := DemoEvents(n, time.Now())
		if err != nil {
			t.Fatalf("event %d: %v", n, err)
		}
		for _, task := range ts {
			types[task.Type()] = true
			if strings.Contains(string(task.Payload()), FailTransient) {
				transient++
			}
			if strings.Contains(string(task.Payload()), FailPermanent) {
				permanent++
			}
		}
	}
	if len(types) != 9 {
		t.Errorf("got %d job types in the demo, want all 9: %v", len(types), types)
	}
	if transient == 0 || permanent == 0 {
		t.Errorf("got %d transient and %d permanent demo failures, want some of each", transient, permanent)
	}
}

func TestDemoFailuresAreClassified(t *testing.T) {
	p := Payments{Log: nil}
	_, err := p.Capture(context.Background(), handlers.Capture{PaymentIntentID: "pi_" + FailPermanent + "1"})
	if !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("declined: got %v, want a permanent error", err)
	}
	err = Sender{}.Send(context.Background(), partner.Delivery{PartnerID: "partner-" + FailTransient})
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Errorf("flaky: got %v, want a transient error", err)
	}
}

func TestStoreExpiresKeysWithTheWallClock(t *testing.T) {
	s, err := StartStore("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	if n, _ := c.Exists(ctx, "k").Result(); n != 0 {
		t.Errorf("got key still present after its TTL, want it expired")
	}
}
