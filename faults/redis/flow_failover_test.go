package redis_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	goredis "github.com/redis/go-redis/v9"
)

// TestUnplannedFailoverMidFlowAdvancesEveryFlowOnce runs release flows
// (capture, then the seller's e-mail and the partner's webhook after it,
// and an independent audit: escrowtest.ReleaseFlow) on the real worker with
// REDIS_WAIT_REPLICAS=1 against a master whose replica receives the
// replication stream 200 ms late (peertest.StartLaggingSentinel), and
// SIGKILLs the master while flows are being started and advanced: the
// replication data still in the proxy is lost with it, and the sentinel
// promotes the replica without it. The old master is then started again
// (the sentinel makes it a replica of the new one, so WAIT can be answered
// again) and the run goes on: the producers retry every Start that was not
// acknowledged, as a caller must, until it returns success or
// ErrDuplicate.
//
// At the end every flow is completed, each of its regular steps took effect
// (at the recording adapters), its on-failure step never ran, no job is
// pending, active, scheduled or in retry, no lease is left for asynq's
// recoverer, and no flow is running.
//
// A step's effect may happen twice only through the failover itself: a
// job whose completion was in the lost replication data is leased again on
// the new master and rerun by lease recovery, and an advancement that found
// no replica to acknowledge it (before the old master came back) fails its
// step, which is retried; both are the at-least-once delivery that the
// peers' idempotency keys absorb. So a doubled effect is allowed only for a
// job whose first run began before the replica was back; any other doubled
// effect fails the test.
//
// How it can fail: without WAIT a Start acknowledged on the master can be
// lost with the proxy's data (TestUnplannedFailoverWithoutWaitReplicas
// measures that for jobs): the check right after the promotion that every
// flow acknowledged before the kill is on the promoted replica fails, and
// so does its completion. An advancement that was not idempotent (a
// step completed again re-enqueueing its dependents as new jobs, or a
// Start retry re-enqueueing steps that ran) would run a dependent a second
// time after the failover was over: a doubled effect outside the window.
// An advancement lost on the way (a dependent never enqueued) leaves its
// flow running and the dependent without effect.
func TestUnplannedFailoverMidFlowAdvancesEveryFlowOnce(t *testing.T) {
	t.Parallel()
	s := peertest.StartLaggingSentinel(t)
	opt, client, insp := connect(t, map[string]string{"REDIS_URL": s.URL()}, tasks.WaitReplicas(1))
	eff, _ := startWorker(t, opt, client, 16)

	const n, producers = 60, 6
	fl := make([]*flows.Flow, n)
	for i := range fl {
		fl[i] = escrowtest.ReleaseFlow(t, fmt.Sprintf("esc-fofl-%d", i))
	}
	s.SetLag(200 * time.Millisecond)

	var (
		mu                      sync.Mutex
		next, acked             int
		notDurable, otherErrors int
		ackedIDs                []string
		wg                      sync.WaitGroup
	)
	ctx := context.Background()
	for range producers {
		wg.Go(func() {
			for {
				mu.Lock()
				if next == n {
					mu.Unlock()
					return
				}
				f := fl[next]
				next++
				mu.Unlock()
				// A caller retries a Start that failed until it is acknowledged.
				for {
					_, err := flows.Start(ctx, client, f)
					mu.Lock()
					switch {
					case err == nil || errors.Is(err, flows.ErrDuplicate):
						acked++
						ackedIDs = append(ackedIDs, f.ID())
					case errors.Is(err, tasks.ErrNotReplicated):
						notDurable++
					default:
						otherErrors++
					}
					mu.Unlock()
					if err == nil || errors.Is(err, flows.ErrDuplicate) {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	// Mid-run: a third of the flows started, some steps done, others in flight.
	escrowtest.Eventually(t, "a third of the flows started", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return acked >= n/3
	})
	oldMaster, newMaster := s.Master.Addr(), s.Replica.Addr()
	if proxy, link, err := s.ReplicaLinkPort(); err != nil || link != proxy {
		t.Fatalf("replica replicates from port %d (err %v), want the lag proxy's %d", link, err, proxy)
	}
	mu.Lock()
	ackedAtKill := append([]string(nil), ackedIDs...)
	mu.Unlock()
	s.KillMaster()
	killed := time.Now()
	if err := s.WaitMaster(newMaster, 60*time.Second); err != nil {
		t.Fatalf("after SIGKILL of %s: %v\n%s", oldMaster, err, s.Output())
	}
	promoted := time.Since(killed)
	// Every Start acknowledged before the kill (its state written with WAIT
	// 1) is on the promoted replica, though the master's last writes were
	// lost with the proxy.
	nm := goredis.NewClient(&goredis.Options{Addr: newMaster})
	defer nm.Close()
	for _, id := range ackedAtKill {
		if n, err := nm.Exists(ctx, "escrowjobs:flow:{"+id+"}").Result(); err != nil || n != 1 {
			t.Errorf("flow %s, acknowledged before the kill: not on the promoted replica (exists %d, %v)", id, n, err)
		}
	}
	// A second worker joins now: its recoverer's second run, a minute from
	// now, finds the jobs leased on the new master to no running handler
	// (their completion was lost) once their lease has expired.
	eff2, _ := startWorker(t, opt, client, 8)
	// The old master comes back empty; the sentinel makes it a replica of
	// the new master, which can answer WAIT 1 again.
	s.Master.Start()
	if err := peertest.WaitRole(oldMaster, "slave", 90*time.Second); err != nil { // the sentinel converts it at its next look, ~15 s
		t.Fatalf("old master %s restarted: %v\n%s", oldMaster, err, s.Output())
	}
	escrowtest.Eventually(t, "the new master has a replica in sync", 60*time.Second, func() bool {
		info, err := nm.Info(ctx, "replication").Result()
		return err == nil && infoValue(info, "connected_slaves") == "1" && strings.Contains(infoValue(info, "slave0"), "state=online")
	})
	settled := time.Now()
	t.Logf("SIGKILL of %s with %d of %d flows acknowledged (%d replication bytes dropped); %s promoted after %v; replica back after %v",
		oldMaster, len(ackedAtKill), n, s.Dropped(), newMaster, promoted.Round(time.Millisecond), settled.Sub(killed).Round(time.Millisecond))
	wg.Wait()

	store := flows.NewStore(client.Redis(), insp)
	for _, f := range fl {
		escrowtest.Eventually(t, "flow "+f.ID()+" completed", 150*time.Second, func() bool {
			v, err := store.Status(ctx, f.ID())
			return err == nil && v.State == flows.StateCompleted
		})
	}
	t.Logf("every flow completed %.1f s after the kill", time.Since(killed).Seconds())
	// Lease recovery reruns the jobs whose completion was lost; the count
	// below is final only when nothing is left for it.
	escrowtest.Eventually(t, "no job pending, active, scheduled or in retry", 150*time.Second, func() bool {
		q := totals(t, insp)
		return q.Pending+q.Active+q.Scheduled+q.Retry == 0
	})
	escrowtest.NoLeases(t, opt)
	if q := totals(t, insp); q.Archived != 0 {
		t.Errorf("got %d archived jobs, want none", q.Archived)
	}
	if page, err := store.List(ctx, flows.Filter{State: flows.StateRunning}, "", flows.MaxListLimit); err != nil || len(page.Items) != 0 {
		t.Errorf("running flows after the run: got %d (%v), want none", len(page.Items), err)
	}

	var steps []string
	var reruns []string
	for _, f := range fl {
		for name, id := range f.JobIDs() {
			if name == "failure-audit" {
				c := eff.Calls(id) + eff2.Calls(id)
				if c != 0 {
					t.Errorf("flow %s: on-failure step ran %d times, want never", f.ID(), c)
				}
				continue
			}
			steps = append(steps, id)
			effects := effectsOf(eff, id) + effectsOf(eff2, id)
			switch {
			case effects == 0:
				t.Errorf("flow %s: step %s (%s) never took effect", f.ID(), name, id)
			case effects > 1:
				first := firstStart(eff, eff2, id)
				reruns = append(reruns, fmt.Sprintf("%s ×%d (first run %+.2f s from the kill)", id, effects, first.Sub(killed).Seconds()))
				if first.After(settled) {
					t.Errorf("flow %s: step %s took effect %d times, its first run %.2f s after the failover was over: a double, not a failover rerun",
						f.ID(), name, effects, first.Sub(settled).Seconds())
				}
			}
		}
	}
	sort.Strings(reruns)
	mu.Lock()
	t.Logf("flows %d, steps %d; Start calls acknowledged %d, not durable (ErrNotReplicated) %d, other errors %d; steps rerun by the failover (at-least-once, absorbed by idempotency keys) %d: %v",
		n, len(steps), acked, notDurable, otherErrors, len(reruns), reruns)
	mu.Unlock()
}

// effectsOf is the number of successful adapter calls of job id.
func effectsOf(a *escrowtest.Adapters, id string) int {
	n := 0
	for _, at := range a.Attempts(id) {
		if at.Err == nil {
			n++
		}
	}
	return n
}

// firstStart is when the first adapter call of job id began at either
// worker.
func firstStart(a, b *escrowtest.Adapters, id string) time.Time {
	var first time.Time
	for _, ad := range []*escrowtest.Adapters{a, b} {
		for _, at := range ad.Attempts(id) {
			if first.IsZero() || at.Start.Before(first) {
				first = at.Start
			}
		}
	}
	return first
}
