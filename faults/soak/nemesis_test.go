package soak_test

import (
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/escrowjobs/escrowjobs/faults/soak"
	"github.com/escrowjobs/escrowjobs/peertest"
)

// runNemesis carries out plan (each fault at its time, in its own
// goroutine) and returns when every fault has ended and been undone.
// A fault that cannot be carried out (a worker that does not restart, a
// failover that does not happen) is an error of the run.
func (s *system) runNemesis(plan []soak.Fault) {
	var wg sync.WaitGroup
	for _, f := range plan {
		if d := f.At - time.Since(s.start); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			if err := s.inject(f); err != nil {
				s.logf("%s FAILED: %v", f.Kind, err)
				s.t.Errorf("fault %s: %v", f, err)
			}
		})
	}
	wg.Wait()
}

func (s *system) inject(f soak.Fault) error {
	switch f.Kind {
	case soak.SIGKILL, soak.SIGTERM:
		p := s.worker(f.Target)
		sig := map[soak.Kind]syscall.Signal{soak.SIGKILL: syscall.SIGKILL, soak.SIGTERM: syscall.SIGTERM}[f.Kind]
		s.logf("%s worker w%d", f.Kind, f.Target)
		p.Signal(sig)
		if _, ok := p.Wait(30 * time.Second); !ok {
			p.Kill()
			return fmt.Errorf("worker w%d did not exit within 30 s of %s", f.Target, f.Kind)
		}
		time.Sleep(f.Pause)
		if err := s.startWorker(f.Target); err != nil {
			return err
		}
		s.logf("worker w%d restarted", f.Target)
	case soak.Failover:
		node, _, link, other, err := s.masterNode()
		if err != nil {
			return err
		}
		s.logf("failover: SIGKILL of the master (%s)", link)
		node.Kill()
		if err := s.sentinel.WaitMaster(other, 60*time.Second); err != nil {
			return fmt.Errorf("after SIGKILL of the master %s: %w", link, err)
		}
		s.logf("failover: sentinel promoted %s", other)
		time.Sleep(f.Pause)
		if err := startNode(node); err != nil {
			return err
		}
		if err := peertest.WaitRole(node.Addr(), "slave", 90*time.Second); err != nil {
			return fmt.Errorf("old master %s restarted: %w", link, err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for !s.replicaInSync(other) {
			if time.Now().After(deadline) {
				return fmt.Errorf("new master %s has no replica in sync 60 s after the old one came back", other)
			}
			time.Sleep(200 * time.Millisecond)
		}
		s.logf("failover: old master %s back as a replica, in sync", link)
	case soak.SIGSTOP:
		master, replica, ml, rl, err := s.masterNode()
		if err != nil {
			return err
		}
		node, name := master, "master "+ml
		if f.Target == 1 {
			node, name = replica, "replica "+rl
		}
		s.logf("SIGSTOP of the Redis %s for %.1fs", name, f.Dur.Seconds())
		node.Signal(syscall.SIGSTOP)
		time.Sleep(f.Dur)
		node.Signal(syscall.SIGCONT)
		s.logf("SIGCONT of the Redis %s", name)
	case soak.Postgres:
		mode := []string{"fast", "immediate"}[f.Target]
		s.logf("PostgreSQL restart (%s)", mode)
		if err := s.pg.Restart(mode); err != nil {
			return err
		}
		s.logf("PostgreSQL up again")
	case soak.Partner:
		s.logf("partner %s down for %.1fs", partnerDown, f.Dur.Seconds())
		s.partnerIsDown.Store(true)
		time.Sleep(f.Dur)
		s.partnerIsDown.Store(false)
		s.logf("partner %s up", partnerDown)
	case soak.Stripe:
		s.logf("Stripe answers 500 for %.1fs", f.Dur.Seconds())
		s.stripe.SetDown(http.StatusInternalServerError)
		time.Sleep(f.Dur)
		s.stripe.SetDown(0)
		s.logf("Stripe answers again")
	case soak.Latency:
		names := linkNames(f.Target)
		s.logf("+%d ms on %v for %.1fs", f.Millis, names, f.Dur.Seconds())
		for _, n := range names {
			if err := s.links.AddLatency(n, f.Millis, f.Millis/4); err != nil {
				return err
			}
		}
		time.Sleep(f.Dur)
		for _, n := range names {
			if err := s.links.Clear(n); err != nil {
				return err
			}
		}
		s.logf("latency on %v removed", names)
	case soak.Cut:
		names := linkNames(f.Target)
		s.logf("cut %v for %.1fs", names, f.Dur.Seconds())
		for _, n := range names {
			if err := s.links.Down(n); err != nil {
				return err
			}
		}
		time.Sleep(f.Dur)
		for _, n := range names {
			if err := s.links.Up(n); err != nil {
				return err
			}
		}
		s.logf("%v up again", names)
	default:
		return fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	return nil
}

func linkNames(target int) []string {
	if target == 0 {
		return []string{"redis-a", "redis-b"}
	}
	return []string{"pg"}
}

// startNode restarts a killed Redis node (RedisServer.Start waits until
// it answers PING).
func startNode(node *peertest.RedisServer) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		node.Start()
	}()
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("redis %s did not start within 30 s", node.Addr())
	}
}
