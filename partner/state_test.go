package partner

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// TestStateMachine drives one partner's shared state through its
// transitions with the real scripts, on one Redis and on a three-master
// Cluster (every key of a partner shares its hash tag).
func TestStateMachine(t *testing.T) {
	t.Parallel()
	for _, topo := range []struct {
		name string
		rc   func(t *testing.T) redis.UniversalClient
	}{
		{"single", func(t *testing.T) redis.UniversalClient {
			opt, err := redis.ParseURL(peertest.Redis(t))
			if err != nil {
				t.Fatal(err)
			}
			return redis.NewClient(opt)
		}},
		{"cluster", func(t *testing.T) redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: peertest.StartCluster(t).Addrs})
		}},
	} {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			rc := topo.rc(t)
			defer rc.Close()
			checkStateMachine(t, rc)
		})
	}
}

func checkStateMachine(t *testing.T, rc redis.UniversalClient) {
	ctx := context.Background()
	s, err := NewState(StateConfig{Redis: rc, BreakerFailures: 3, BreakerProbe: time.Second, Lease: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Known(ctx, []string{"acme"}); err != nil {
		t.Fatal(err)
	}
	limits := Limits{MaxConcurrency: 2}
	admit := func(job string) admission {
		t.Helper()
		a, err := s.admit(ctx, "acme", job, limits)
		if err != nil {
			t.Fatalf("admit %s: %v", job, err)
		}
		return a
	}
	wantWait := func(a admission, reason string) {
		t.Helper()
		if a.wait == nil || a.wait.Reason != reason {
			t.Fatalf("got %+v, want a wait for %q", a, reason)
		}
	}
	status := func() Status {
		t.Helper()
		st, err := s.Status(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	// Two slots: the third delivery waits; releasing one lets it in.
	a1, a2 := admit("j1"), admit("j2")
	if a1.wait != nil || a2.wait != nil {
		t.Fatalf("first two admissions: %+v %+v, want both admitted", a1, a2)
	}
	wantWait(admit("j3"), WaitConcurrency)
	if st := status(); st.Waiting != 1 {
		t.Errorf("waiting: got %d, want 1 (j3)", st.Waiting)
	}
	if _, err := s.record(ctx, "acme", "j1", a1, verdictAnswered, true, 20*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	a3 := admit("j3")
	if a3.wait != nil {
		t.Fatalf("j3 after a slot freed: %+v, want admitted", a3)
	}
	if st := status(); st.Waiting != 0 || st.LastSuccessAt == nil {
		t.Errorf("after j3 admitted: %+v, want nothing waiting and a last success", st)
	}
	// A crashed worker's slot (a2 never recorded) frees itself after its lease.
	wantWait(admit("j4"), WaitConcurrency)
	time.Sleep(1100 * time.Millisecond)
	a4 := admit("j4")
	if a4.wait != nil {
		t.Fatalf("j4 after the lease expired: %+v, want admitted", a4)
	}

	// Three transient failures open the circuit; deliveries wait for the probe.
	for i, a := range []admission{a3, a4} {
		if n, err := s.record(ctx, "acme", "j", a, verdictTransient, false, time.Second, 0); err != nil || n != i+1 {
			t.Fatalf("failure %d: got %d, %v", i+1, n, err)
		}
	}
	a5 := admit("j5")
	if n, _ := s.record(ctx, "acme", "j5", a5, verdictTransient, false, time.Second, 0); n != 3 {
		t.Fatalf("third failure: got %d consecutive, want 3", n)
	}
	if st := status(); st.State != StateOpen || st.ConsecutiveFailures != 3 {
		t.Errorf("after 3 failures: %+v, want open with 3", st)
	}
	wantWait(admit("j6"), WaitCircuitOpen)
	time.Sleep(1050 * time.Millisecond)
	probe := admit("j6")
	if probe.wait != nil || !probe.probe {
		t.Fatalf("after the probe interval: %+v, want admitted as the probe", probe)
	}
	wantWait(admit("j7"), WaitCircuitOpen) // one probe at a time
	if _, err := s.record(ctx, "acme", "j6", probe, verdictAnswered, true, 10*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.State != StateHealthy || st.ConsecutiveFailures != 0 {
		t.Errorf("after the probe answered: %+v, want healthy", st)
	}

	// Retry-After pauses the partner; it does not count towards the circuit.
	a8 := admit("j8")
	if n, _ := s.record(ctx, "acme", "j8", a8, verdictThrottled, false, time.Millisecond, time.Second); n != 0 {
		t.Errorf("throttled: %d consecutive failures, want 0", n)
	}
	wantWait(admit("j9"), WaitThrottled)
	if st := status(); st.ThrottledUntil == nil {
		t.Errorf("status while throttled: %+v, want throttledUntil", st)
	}
	time.Sleep(1050 * time.Millisecond)
	if a := admit("j9"); a.wait != nil {
		t.Fatalf("after the pause: %+v, want admitted", a)
	} else {
		_, _ = s.record(ctx, "acme", "j9", a, verdictAnswered, true, time.Millisecond, 0)
	}

	// Disabled: no admission until Enable.
	if first, err := s.disable(ctx, "acme", "410", false); err != nil || !first {
		t.Fatalf("disable: %v %v", first, err)
	}
	if first, _ := s.disable(ctx, "acme", "410", false); first {
		t.Errorf("second disable reported as the first")
	}
	if a := admit("j10"); !a.disabled {
		t.Fatalf("disabled partner: %+v, want refused", a)
	}
	if st := status(); st.State != StateDisabled {
		t.Errorf("state %q, want disabled", st.State)
	}
	if err := s.Enable(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if a := admit("j10"); a.wait != nil || a.disabled {
		t.Fatalf("after enable: %+v, want admitted", a)
	}
	if list, err := s.Statuses(ctx); err != nil || len(list) != 1 || list[0].ID != "acme" || !list[0].Known {
		t.Errorf("Statuses: %+v, %v; want acme, known", list, err)
	}
}
