package main

// Partner delivery end to end, continued: disabled partners, registry
// reloads, throttles and rate limits (setup in partners_test.go).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/repair"
)

func TestGoneDisablesPartnerUntilEnabled(t *testing.T) {
	t.Parallel()
	recv := escrowtest.StartPartner(t)
	heal := failUntilHealed(recv, http.StatusGone)
	e := setupPartners(t, map[string]regEntry{"acme": {URL: recv.URL, Secret: recv.Secret}}, nil)
	e.start()
	first := e.enqueue("evt-gone-1", "acme")
	escrowtest.Eventually(e.t, "the partner to be disabled", 10*time.Second, func() bool { return e.state("acme").State == partner.StateDisabled })
	second := e.enqueue("evt-gone-2", "acme")
	for _, j := range []string{first, second} {
		escrowtest.Eventually(t, j+" to be a dead letter", 10*time.Second, func() bool { s, _ := e.jobState(j); return s == "archived" })
		if _, lastErr := e.jobState(j); !strings.Contains(lastErr, "endpoint disabled") {
			t.Errorf("%s: last error %q, want it to say endpoint disabled", j, lastErr)
		}
	}
	if n := len(recv.Requests()); n != 1 {
		t.Errorf("partner saw %d requests, want 1 (the 410; later deliveries are not sent)", n)
	}
	v, _ := e.rc.LIndex(context.Background(), "escrowjobs:alerts:pending", 0).Result()
	if !strings.Contains(v, partner.AlertPartnerDisabled) || !strings.Contains(v, `"partner":"acme"`) {
		t.Errorf("queued alert %q, want a partner_disabled alert for acme", v)
	}
	if st := e.state("acme"); st.Waiting != 2 {
		t.Errorf("waiting: got %d, want 2 dead letters kept for the partner", st.Waiting)
	}

	heal()
	rd := e.redelivery()
	n, err := rd.Enable(context.Background(), "acme", "test-operator")
	if err != nil {
		t.Fatalf("enable: %v", err)
	}
	if n != 2 {
		t.Errorf("enable scheduled %d redeliveries, want 2", n)
	}
	escrowtest.Eventually(e.t, "both events to be delivered after enable", 15*time.Second, func() bool { return len(recv.Delivered()) == 2 })
	time.Sleep(time.Second)
	checkDeliveredOnce(t, recv, []string{"evt-gone-1", "evt-gone-2"})
	if st := e.state("acme"); st.State != partner.StateHealthy || st.Waiting != 0 {
		t.Errorf("state after enable: %+v, want healthy with nothing waiting", st)
	}
}

// redelivery is a Redelivery over the test's Redis, as the monitor API
// and jobctl build one to enable a partner.
func (e *partnerEnv) redelivery() *partner.Redelivery {
	e.t.Helper()
	w, err := partner.NewWatcher(e.regPath, true, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := partner.NewState(partner.StateConfig{Redis: e.rc})
	if err != nil {
		e.t.Fatal(err)
	}
	ledger, err := deadletter.OpenFile(e.env["DEAD_LETTER_PATH"])
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { ledger.Close() })
	rd, err := partner.NewRedelivery(partner.RedeliveryConfig{
		Redis: e.rc, DeadLetters: partner.LedgerDeadLetters{Desk: repair.NewDesk(e.insp, ledger)}, State: st, Registry: w.Registry,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return rd
}

func TestRegistryEditedAtRuntime(t *testing.T) {
	t.Parallel()
	acme := escrowtest.StartPartner(t)
	globex := escrowtest.StartPartner(t)
	e := setupPartners(t, map[string]regEntry{"acme": {URL: acme.URL, Secret: acme.Secret}}, nil)
	e.start()

	early := e.enqueue("evt-globex-early", "globex")
	escrowtest.Eventually(e.t, "the unknown partner's job to be a dead letter", 10*time.Second, func() bool { s, _ := e.jobState(early); return s == "archived" })
	if _, lastErr := e.jobState(early); !strings.Contains(lastErr, "unknown partner") {
		t.Errorf("last error %q, want it to say unknown partner", lastErr)
	}
	e.writeRegistry(map[string]regEntry{"acme": {URL: acme.URL, Secret: acme.Secret}, "globex": {URL: globex.URL, Secret: globex.Secret}})
	escrowtest.Eventually(e.t, "the waiting event to reach the added partner", 10*time.Second, func() bool { return globex.Delivered()["evt-globex-early"] == 1 })
	e.enqueue("evt-globex-late", "globex")
	e.enqueue("evt-acme", "acme")
	escrowtest.Eventually(e.t, "new events to reach both partners", 10*time.Second, func() bool {
		return globex.Delivered()["evt-globex-late"] == 1 && acme.Delivered()["evt-acme"] == 1
	})
	checkDeliveredOnce(t, globex, []string{"evt-globex-early", "evt-globex-late"})
	checkDeliveredOnce(t, acme, []string{"evt-acme"})
}

func TestRetryAfterPausesThePartner(t *testing.T) {
	t.Parallel()
	recv := escrowtest.StartPartner(t)
	recv.Answer(func(n int) escrowtest.Answer {
		if n == 0 {
			return escrowtest.Answer{Status: http.StatusTooManyRequests, RetryAfter: "3"}
		}
		return escrowtest.Answer{}
	})
	// One delivery at a time, so none is in flight when the 429 lands.
	e := setupPartners(t, map[string]regEntry{"acme": {URL: recv.URL, Secret: recv.Secret, MaxConcurrency: 1}}, nil)
	e.start()
	e.enqueue("evt-ra-1", "acme")
	escrowtest.Eventually(e.t, "the 429", 10*time.Second, func() bool { return len(recv.Requests()) > 0 })
	e.enqueue("evt-ra-2", "acme")
	e.enqueue("evt-ra-3", "acme")
	escrowtest.Eventually(e.t, "all three events after the pause", 15*time.Second, func() bool { return len(recv.Delivered()) == 3 })
	reqs := recv.Requests()
	pausedAt := reqs[0].At
	for _, q := range reqs[1:] {
		if gap := q.At.Sub(pausedAt); gap < 3*time.Second-50*time.Millisecond {
			t.Errorf("request for %s %s after the 429 with Retry-After: 3, want none before 3 s", q.ID, gap)
		}
	}
	if len(reqs) != 4 {
		t.Errorf("partner saw %d requests, want 4 (the 429 and three deliveries)", len(reqs))
	}
	checkDeliveredOnce(t, recv, []string{"evt-ra-1", "evt-ra-2", "evt-ra-3"})
}

func TestRegistryReloadsOnSIGHUP(t *testing.T) {
	t.Parallel()
	acme := escrowtest.StartPartner(t)
	initech := escrowtest.StartPartner(t)
	// No polling during the test: only SIGHUP can bring the change in.
	e := setupPartners(t, map[string]regEntry{"acme": {URL: acme.URL, Secret: acme.Secret}}, map[string]string{"WEBHOOK_REGISTRY_POLL": "1h"})
	e.start()
	job := e.enqueue("evt-initech", "initech.eu")
	escrowtest.Eventually(e.t, "the unknown partner's job to be a dead letter", 10*time.Second, func() bool { s, _ := e.jobState(job); return s == "archived" })
	e.writeRegistry(map[string]regEntry{"acme": {URL: acme.URL, Secret: acme.Secret}, "initech.eu": {URL: initech.URL, Secret: initech.Secret}})
	time.Sleep(500 * time.Millisecond)
	if n := len(initech.Requests()); n != 0 {
		t.Fatalf("initech saw %d requests before SIGHUP, want 0", n)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	escrowtest.Eventually(e.t, "the dead letter to reach the partner after SIGHUP", 10*time.Second, func() bool { return initech.Delivered()["evt-initech"] == 1 })
	checkDeliveredOnce(t, initech, []string{"evt-initech"})
}

func TestRatePerSecondCapsStartsAcrossProcesses(t *testing.T) {
	t.Parallel()
	const rate = 2.0 // a bucket of 2, refilled at 2 per second
	recv := escrowtest.StartPartner(t)
	r := rate
	e := setupPartners(t, map[string]regEntry{"acme": {URL: recv.URL, Secret: recv.Secret, MaxConcurrency: 50, RatePerSecond: &r}}, nil)
	e.start()
	e.start()
	var events []string
	for i := range 8 {
		ev := fmt.Sprintf("evt-rate-%d", i)
		events = append(events, ev)
		e.enqueue(ev, "acme")
	}
	escrowtest.Eventually(e.t, "every event to be delivered", 30*time.Second, func() bool { return len(recv.Delivered()) == len(events) })
	reqs := recv.Requests()
	// No window may hold more requests than the bucket allows: 2 + 2 per
	// second of the window.
	for i := range reqs {
		for j := i + 1; j < len(reqs); j++ {
			// 300 ms of slack: a request slow to arrive on a loaded machine
			// squeezes the window it ends (no limit at all sends all 8 at once).
			span := reqs[j].At.Sub(reqs[i].At) + 300*time.Millisecond
			if n, allowed := j-i+1, 2+int(rate*span.Seconds()); n > allowed {
				t.Errorf("%d requests within %s (requests %d to %d), want at most %d at %g per second", n, span, i, j, allowed, rate)
			}
		}
	}
	checkDeliveredOnce(t, recv, events)
}
