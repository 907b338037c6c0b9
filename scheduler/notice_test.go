package scheduler_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/scheduler"
)

func TestWatchdogPostsQueuedNoticesOnceSigned(t *testing.T) {
	url := peertest.Redis(t)
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := opt.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	recv := escrowtest.StartPartner(t)
	ctx := context.Background()
	notices := []scheduler.Notice{
		{Type: partner.AlertPartnerDisabled, Partner: "acme", Reason: "endpoint answered 410 Gone"},
		{Type: partner.AlertRedeliveryExhausted, Partner: "globex", Reason: "job webhook_escrow_status_changed:event-e1 failed after 7 redeliveries"},
	}
	for _, n := range notices {
		if err := scheduler.PushNotice(ctx, rc, n); err != nil {
			t.Fatal(err)
		}
	}
	// Two schedulers: each notice is posted by one of them.
	cfg := scheduler.Config{Redis: opt, AlertURL: recv.URL, AlertSecret: recv.Secret, WatchdogInterval: time.Second}
	a, b := start(t, cfg), start(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for recv.DeliveredCount() < len(notices) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // another check could post a double
	a.stop()
	b.stop()
	reqs := recv.Requests()
	if len(reqs) != len(notices) {
		t.Fatalf("receiver got %d alerts, want %d", len(reqs), len(notices))
	}
	// Each notice is popped in order, but two schedulers post them
	// concurrently: match them by type.
	got := map[string]scheduler.Notice{}
	for i, q := range reqs {
		if q.VerifyErr != nil {
			t.Errorf("alert %d: signature: %v", i, q.VerifyErr)
		}
		var n scheduler.Notice
		if err := json.Unmarshal(q.Body, &n); err != nil {
			t.Fatalf("alert %d: %v: %s", i, err, q.Body)
		}
		if q.ID != n.ID {
			t.Errorf("alert %d: webhook-id %s, want the notice's id %s", i, q.ID, n.ID)
		}
		got[n.Type] = n
	}
	for _, want := range notices {
		if g := got[want.Type]; g.Partner != want.Partner || g.Reason != want.Reason {
			t.Errorf("alert %s: got %+v, want %+v", want.Type, g, want)
		}
	}
}
