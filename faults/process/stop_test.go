package process_test

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
)

// A worker killed with SIGKILL while it holds in-flight jobs loses none of
// them: asynq's recoverer in a second worker process requeues them once
// their lease has expired, and the second worker finishes every job. The
// Stripe effects are made exactly once (the redo finds them by state and
// Idempotency-Key), the audit events once (by eventId), and every webhook
// and e-mail arrives at least once with a stable webhook-id / Message-ID.
//
// asynq v0.26 leases a job for 30 s (rdb.LeaseDuration), extends the lease
// every 5 s heartbeat, and its recoverer — run by every server at start and
// then once a minute, not configurable — requeues a job whose lease expired
// more than 30 s ago. A job of a killed worker is thus recoverable 60 s after
// the last heartbeat at most. Starting the second worker right after the
// kill puts its second recoverer run 60 s after the kill: just after the
// earliest moment, without patching asynq.
func TestWorkerKilledMidJobLosesNothingAndDoublesNoEffect(t *testing.T) {
	t.Parallel() // mostly a wait for asynq's lease recovery: let the other scenarios run meanwhile
	h := setup(t, true)
	const pause = 1500 * time.Millisecond
	h.stripe.SetDelay(func(r *http.Request) time.Duration {
		if r.Method == http.MethodPost {
			return pause
		}
		return 0
	})
	h.hooks.SetDelay(func(string) time.Duration { return pause })
	jobs := h.enqueueMix(t, "crash", 14, 10, 16, 10, 10, nil)

	a := h.startServer(t, "a", map[string]string{"WORKER_CONCURRENCY": "8"})
	escrowtest.Eventually(t, "worker a mid-run (effects done, requests held at Stripe and the partner)", 30*time.Second, func() bool {
		return h.effectsSoFar() >= 6 && h.stripe.Inflight() >= 1 && h.hooks.Inflight() >= 1 &&
			h.stripe.Inflight()+h.hooks.Inflight() >= 4
	})
	heldAtPeers := h.stripe.Inflight() + h.hooks.Inflight()
	a.Kill()
	killed := time.Now()
	orphans := h.activeIDs(t)
	before := h.states(t, jobs)
	done := 0
	for _, st := range before {
		if st == "completed" {
			done++
		}
	}
	t.Logf("SIGKILL: %d jobs completed, %d leased to the dead worker (%d requests held at the peers): %v", done, len(orphans), heldAtPeers, orphans)
	kinds := map[string]bool{}
	for _, id := range orphans {
		typ, _, _ := strings.Cut(id, ":")
		kinds[typ] = true
	}
	if !(kinds["stripe_capture_payment"] || kinds["stripe_refund_payment"]) || !kinds["webhook_escrow_status_changed"] {
		t.Fatalf("in flight at the kill: %v; want a Stripe job and a webhook among them, or the scenario tests little", orphans)
	}

	b := h.startServer(t, "b", nil)
	bUp := time.Since(killed)
	recoveredAt := map[string]time.Duration{}
	h.waitCompleted(t, jobs, 150*time.Second, func(st map[string]string) {
		for _, id := range orphans {
			if _, seen := recoveredAt[id]; !seen && st[id] != "active" {
				recoveredAt[id] = time.Since(killed)
			}
		}
	})
	var first, last time.Duration
	for _, d := range recoveredAt {
		if first == 0 || d < first {
			first = d
		}
		last = max(last, d)
	}
	t.Logf("recovery window: second worker up %.1f s after the kill; the dead worker's jobs requeued by its recoverer %.1f–%.1f s after the kill; every job completed %.1f s after the kill",
		bUp.Seconds(), first.Seconds(), last.Seconds(), time.Since(killed).Seconds())

	h.checkEffects(t, "crash", jobs)
	b.Signal(syscall.SIGTERM)
	if _, ok := b.Wait(15 * time.Second); !ok {
		t.Errorf("server b did not exit within 15 s of SIGTERM")
	}
	h.scanLogs(t)
}

// the others go back to the queue (none is left leased to the dead process
// for the lease recoverer), and a second worker finishes them — long before
// a lease recovery could have (≥ 60 s).
func TestSIGTERMMidRunReturnsUnfinishedJobsToTheQueue(t *testing.T) {
	h := setup(t, true)
	const timeout, fast, slow = 3 * time.Second, 700 * time.Millisecond, 6 * time.Second
	h.stripe.SetDelay(func(r *http.Request) time.Duration {
		switch {
		case r.Method != http.MethodPost:
			return 0
		case strings.Contains(r.URL.Path+r.PostForm.Get("payment_intent"), "slow"):
			return slow
		}
		return fast
	})
	h.hooks.SetDelay(func(id string) time.Duration {
		if strings.Contains(id, "slow") {
			return slow
		}
		return fast
	})
	jobs := h.enqueueMix(t, "term", 10, 6, 12, 8, 8, func(kind string, i int) bool { return i%2 == 0 })

	a := h.startServer(t, "a", map[string]string{"WORKER_CONCURRENCY": "24", "WORKER_SHUTDOWN_TIMEOUT": timeout.String()})
	escrowtest.Eventually(t, "worker a with slow requests in flight", 30*time.Second, func() bool {
		return h.effectsSoFar() >= 8 && h.stripe.Inflight() >= 2 && h.hooks.Inflight() >= 2
	})
	inflight := h.activeIDs(t)
	a.Signal(syscall.SIGTERM)
	sent := time.Now()
	err, exited := a.Wait(timeout + 5*time.Second)
	stopped := time.Since(sent)
	if !exited {
		t.Fatalf("server a did not exit within %s of SIGTERM (WORKER_SHUTDOWN_TIMEOUT %s)", timeout+5*time.Second, timeout)
	}
	if err != nil {
		t.Errorf("server a exited with %v after SIGTERM, want status 0", err)
	}
	after := h.states(t, jobs)
	var returned, finished, waiting []string
	for _, id := range inflight {
		switch after[id] {
		case "completed":
			finished = append(finished, id)
		case "pending":
			returned = append(returned, id)
		case "retry":
			// A webhook that was active at the snapshot but had not passed
			// its partner's gate yet may have been told to wait (partner at
			// maxConcurrency): back in Redis for later with no attempt
			// spent, which is fine; any other retry is a failure.
			if st, err := h.insp.Status(context.Background(), id); err == nil && strings.Contains(st.LastError, " waits (") && st.Attempts == 0 {
				waiting = append(waiting, id)
				continue
			}
			fallthrough
		default:
			t.Errorf("in-flight job %s is %q after the shutdown, want completed, pending (back in the queue) or waiting for its partner", id, after[id])
		}
	}
	if left := h.activeIDs(t); len(left) > 0 {
		t.Errorf("after the shutdown, %d jobs are still leased to the dead worker: %v", len(left), left)
	}
	completed := 0
	for _, st := range after {
		if st == "completed" {
			completed++
		}
	}
	t.Logf("SIGTERM with %d jobs in flight: exited after %.2f s (timeout %s); of those, %d finished, %d went back to the queue and %d wait for their partner; %d of %d jobs completed; %d 'Quitting worker' lines",
		len(inflight), stopped.Seconds(), timeout, len(finished), len(returned), len(waiting), completed, len(jobs), strings.Count(a.Output(), "Quitting worker"))
	if len(returned) == 0 {
		t.Errorf("no in-flight job went back to the queue: the slow handlers (%s) did not outlast the %s timeout", slow, timeout)
	}

	b := h.startServer(t, "b", map[string]string{"WORKER_CONCURRENCY": "24"})
	took := h.waitCompleted(t, jobs, 40*time.Second, nil)
	t.Logf("second worker completed the rest within %.1f s", took.Seconds())

	h.checkEffects(t, "sigterm", jobs)
	b.Signal(syscall.SIGTERM)
	if _, ok := b.Wait(timeout + 5*time.Second); !ok {
		t.Errorf("server b did not exit within %s of SIGTERM", timeout+5*time.Second)
	}
	h.scanLogs(t)
}

// Three worker processes on one Redis run 20,000 jobs, each handler exactly
// once. The jobs are audit events (the cheapest handler: a line in a file),
