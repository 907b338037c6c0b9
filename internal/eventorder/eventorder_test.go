package eventorder_test

import (
	"context"
	"testing"

	"github.com/escrowjobs/escrowjobs/internal/eventorder"
	"github.com/escrowjobs/escrowjobs/peertest"
)

// The order of one escrow's events to one partner: only the head goes;
// a release lets the next go and names it when it waits; a released event
// stays released (a duplicate registration writes nothing); Behind counts
// the open events after one; DropHead drops only the current head.
func TestOrderOfAnEscrowsEvents(t *testing.T) {
	ctx := context.Background()
	rc := peertest.RedisClient(t, peertest.Redis(t))
	for i, id := range []string{"e1", "e2", "e3"} {
		if seq, err := eventorder.Register(ctx, rc, "esc", "acme", id, 0); err != nil || seq != int64(i+1) {
			t.Fatalf("register %s: got %d, %v; want %d", id, seq, err, i+1)
		}
	}
	check := func(id string, wantGo bool, wantHead string, wantAhead int) {
		t.Helper()
		v, err := eventorder.Check(ctx, rc, "esc", "acme", id)
		if err != nil || v.Go != wantGo || v.Head != wantHead || v.Ahead != wantAhead {
			t.Errorf("check %s: got %+v, %v; want go %v, head %q, ahead %d", id, v, err, wantGo, wantHead, wantAhead)
		}
	}
	check("e1", true, "", 0)
	check("e3", false, "e1", 2)
	if ttl := rc.PTTL(ctx, eventorder.WaitingKey("esc", "acme")).Val(); ttl <= 0 {
		t.Errorf("waiting set: got expiry %v, want one", ttl)
	}
	check("unregistered", true, "", 0)
	if n, err := eventorder.Behind(ctx, rc, "esc", "acme", "e1"); err != nil || n != 2 {
		t.Errorf("behind e1: got %d, %v; want 2", n, err)
	}
	if next, dropped, err := eventorder.DropHead(ctx, rc, "esc", "acme", "e2"); err != nil || dropped || next != "" {
		t.Errorf("drop e2, not the head: got %q, %v, %v; want nothing done", next, dropped, err)
	}
	// e2 does not wait (it never checked): releasing e1 names no one.
	if next, released, err := eventorder.Release(ctx, rc, "esc", "acme", "e1"); err != nil || !released || next != "" {
		t.Errorf("release e1: got %q, %v, %v; want released, no waiting next", next, released, err)
	}
	if _, err := eventorder.Register(ctx, rc, "esc", "acme", "e1", 0); err != nil {
		t.Fatal(err)
	}
	check("e1", true, "", 0) // still released after a duplicate registration
	check("e3", false, "e2", 1)
	check("e2", true, "", 0)
	if next, released, err := eventorder.Release(ctx, rc, "esc", "acme", "e2"); err != nil || !released || next != "e3" {
		t.Errorf("release e2: got %q, %v, %v; want e3 (it waits)", next, released, err)
	}
	if next, released, err := eventorder.Release(ctx, rc, "esc", "acme", "e2"); err != nil || released || next != "" {
		t.Errorf("release e2 again: got %q, %v, %v; want nothing (released, e3 woken already)", next, released, err)
	}
	check("e3", true, "", 0)
	if n := rc.Exists(ctx, eventorder.WaitingKey("esc", "acme")).Val(); n != 0 {
		t.Errorf("waiting set after the last wait: got %d keys, want it gone", n)
	}
	for _, k := range []string{eventorder.Key("esc", "acme"), eventorder.CounterKey("esc")} {
		if ttl := rc.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("%s: got expiry %v, want one", k, ttl)
		}
	}
}

func TestSplitForSequenceAndWithSequence(t *testing.T) {
	for _, tc := range []struct {
		payload, want string
	}{
		{`{"a":1}`, `{"a":1,"sequence":7}`},
		{"{\"a\":1} \n", `{"a":1,"sequence":7}`},
		{`{}`, `{"sequence":7}`},
		{`{ }`, `{ "sequence":7}`},
	} {
		body, sep, err := eventorder.SplitForSequence([]byte(tc.payload))
		if err != nil {
			t.Fatalf("%q: %v", tc.payload, err)
		}
		if got := string(eventorder.WithSequence(body, sep, 7)); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.payload, got, tc.want)
		}
	}
	for _, bad := range []string{``, `[1]`, `"x"`, `{`} {
		if _, _, err := eventorder.SplitForSequence([]byte(bad)); err == nil {
			t.Errorf("%q: got no error, want one", bad)
		}
	}
	if got := eventorder.Member("", "job-1"); got != "" {
		t.Errorf("Member without a partner: got %q, want none", got)
	}
	if got := eventorder.Member("acme", "job-1"); got != "job-1" {
		t.Errorf("Member of acme: got %q, want job-1", got)
	}
}
