package soak_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/faults/soak"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/postgres"
)

var (
	soakDuration = flag.Duration("soak.duration", 40*time.Second, "how long the nemesis injects faults and the workload runs (the drain comes after)")
	soakSeed     = flag.Uint64("soak.seed", 0, "the seed of the fault schedule and the workload (0: a random one, printed first)")
	soakRate     = flag.Float64("soak.rate", 0, "escrows created per second (0: 2, or 1 under the race detector)")
)

// TestSoak runs the whole system under the seeded fault schedule (see the
// package comment) and checks every guarantee at the end.
func TestSoak(t *testing.T) {
	seed := *soakSeed
	if seed == 0 {
		seed = 1 + rand.Uint64N(1<<31) // short enough to retype
	}
	fmt.Printf("soak: seed %d (replay: go test ./faults/soak -run TestSoak -soak.seed %d -soak.duration %s)\n", seed, seed, *soakDuration)
	t.Logf("soak: seed %d, duration %s", seed, *soakDuration)
	d := *soakDuration
	rate := *soakRate
	if rate == 0 {
		rate = 2
		if raceEnabled {
			rate = 1
		}
	}

	setup := time.Now()
	s := startSystem(t)
	t.Logf("system up in %.1fs", time.Since(setup).Seconds())
	plan := soak.Plan(seed, d, workerCount)
	var planLines []string
	for _, f := range plan {
		planLines = append(planLines, f.String())
	}
	t.Logf("fault schedule (%s):\n%s", soak.CountLine(plan), strings.Join(planLines, "\n"))

	ctx := context.Background()
	db, err := postgres.Open(ctx, s.pg.URL("postgres")) // direct, not through the link
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// The workload: a new escrow every 1/rate s, each run through its path
	// by its own goroutine.
	s.start = time.Now() // the schedule counts from here
	wr := rand.New(rand.NewPCG(seed, 2))
	stop := make(chan struct{})
	var cases []*escrowCase
	var casesMu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for i := 0; time.Since(s.start) < d; i++ {
			casesMu.Lock()
			e := newCase(wr, i)
			pauses := rand.New(rand.NewPCG(seed, uint64(i)+3))
			cases = append(cases, e)
			casesMu.Unlock()
			wg.Go(func() {
				s.runCase(e, func() time.Duration { return time.Duration(200+pauses.IntN(2000)) * time.Millisecond }, stop)
			})
			<-tick.C
		}
	})

	// Keys without an expiry, a third into the run and at the end.
	var keysBefore map[string]int
	wg.Go(func() {
		time.Sleep(d / 3)
		kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for range 20 {
			if keysBefore, err = s.keysWithoutTTL(kctx); err == nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Errorf("sample the Redis keys: %v", err)
	})

	s.runNemesis(plan)
	if left := d - time.Since(s.start); left > 0 {
		time.Sleep(left)
	}
	close(stop)
	wg.Wait()
	faultsEnd := time.Since(s.start)
	s.logf("faults over; %d escrows; drain", len(cases))

	// Drain: bounded.
	wantOpen := 0
	for _, e := range cases {
		if e.path == pathExpiredRelease || e.path == pathExpiredResolve {
			wantOpen++ // at most; the exact set is checked below
		}
	}
	spill, err := deadletter.OpenFile(s.spillPath()) // the workers' shared spill file; it folds their appends at each read
	if err != nil {
		t.Fatal(err)
	}
	defer spill.Close()
	drainStart := time.Now()
	var left []string
	for {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		left = s.drained(dctx, db.Pool(), db.DeadLetters(), spill, wantOpen)
		if len(left) == 0 {
			left = escrowtest.Leased(t, s.opt)
		}
		cancel()
		if len(left) == 0 || time.Since(drainStart) > soak.LeaseDrain+60*time.Second {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	drain := time.Since(drainStart)
	s.logf("drain took %.1fs", drain.Seconds())

	// Checks.
	bad := map[string][]string{} // escrow → broken invariants
	var global []string
	fail := func(id, format string, args ...any) {
		if id == "" {
			global = append(global, fmt.Sprintf(format, args...))
			return
		}
		bad[id] = append(bad[id], fmt.Sprintf(format, args...))
	}
	var lost, doubled, redelivered int
	var redeliveredIDs []string // at-least-once effects seen more than once, the same Message-ID or webhook-id
	if len(left) > 0 {
		fail("", "the system did not drain within %s: %v", drain.Round(time.Second), left)
	}

	rows, err := readRows(ctx, db.Pool())
	if err != nil {
		t.Fatal(err)
	}
	captured, refunded, _, _ := s.stripe.Effects()
	hooks := map[string]map[string]int{}
	for id, p := range s.partners {
		hooks[id] = p.Delivered()
	}
	mails, err := s.allMail()
	if err != nil {
		t.Fatal(err)
	}
	mailCount := map[string]int{}
	mailTo := map[string]string{}
	for _, m := range mails {
		mailCount[m.MessageID]++
		if len(m.To) == 1 {
			mailTo[m.MessageID] = m.To[0].Address
		}
	}
	audits := map[string]int{}
	arows, err := db.Pool().Query(ctx, `SELECT event_id FROM audit_events`)
	if err != nil {
		t.Fatal(err)
	}
	for arows.Next() {
		var id string
		if err := arows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		audits[id]++
	}
	arows.Close()
	entries, err := ledgerEntries(ctx, db.DeadLetters())
	if err != nil {
		t.Fatal(err)
	}
	openDL := map[string][]deadletter.Entry{} // transaction → open entries
	var requeued int
	// A flow one of whose steps was dead-lettered and then redelivered
	// (a webhook exhausted while its partner was down) failed for a while:
	// its on-failure audit record ran then, as a failed flow's must.
	resolvedFlows := map[string]bool{}
	for _, e := range entries {
		if e.State != deadletter.StateOpen {
			requeued++
			resolvedFlows[e.Flow] = e.Flow != ""
			continue
		}
		var p struct {
			TransactionID string `json:"transactionId"`
		}
		_ = jsonUnmarshal(e.Payload, &p)
		openDL[p.TransactionID] = append(openDL[p.TransactionID], e)
	}
	store := flows.NewStore(s.rc, s.insp)
	done, failedRuns := escrowtest.JobRuns(s.workerOutputs()...)

	seenMail, seenHook, seenAudit, seenPI := map[string]bool{}, map[string]map[string]bool{}, map[string]bool{}, map[string]bool{}
	for id := range s.partners {
		seenHook[id] = map[string]bool{}
	}
	var escrows, transitions int
	for _, e := range cases {
		seenPI[e.pi] = true
		for _, a := range e.anomalies {
			fail(e.id, "API: %s", a)
		}
		r, ok := rows[e.id]
		if !ok {
			continue // never created (its POST was not answered)
		}
		escrows++
		x := expect(e, r)
		transitions += x.transitions
		// Money.
		in := s.stripe.Intent(e.pi)
		cancels := 0
		if in.Status == "canceled" && in.CancellationReason != "automatic" {
			cancels = 1
		}
		for what, got := range map[string][2]int{"captures": {captured[e.pi], x.captures}, "cancels": {cancels, x.cancels}, "refunds": {refunded[e.pi], 0}} {
			switch {
			case got[0] < got[1]:
				lost += got[1] - got[0]
				fail(e.id, "%s %s: got %d, want %d (path %s, status %s)", e.pi, what, got[0], got[1], e.path, r.status)
			case got[0] > got[1]:
				doubled += got[0] - got[1]
				fail(e.id, "%s %s: got %d, want %d (path %s, status %s)", e.pi, what, got[0], got[1], e.path, r.status)
			}
		}
		if x.captures == 1 {
			want := e.amount
			if x.captureAmount > 0 {
				want = x.captureAmount
			}
			if in.Received != want {
				fail(e.id, "%s captured %d, want %d", e.pi, in.Received, want)
			}
		}
		// E-mails: one per kind and recipient (one Message-ID), to the right address.
		for mid, to := range x.mails {
			seenMail[mid] = true
			switch n := mailCount[mid]; {
			case n == 0:
				lost++
				fail(e.id, "e-mail %s to %s: none", mid, payloads.MaskEmail(to))
			case mailTo[mid] != to:
				fail(e.id, "e-mail %s: sent to %s, want %s", mid, payloads.MaskEmail(mailTo[mid]), payloads.MaskEmail(to))
			case n > 1:
				redelivered += n - 1
				redeliveredIDs = append(redeliveredIDs, fmt.Sprintf("%s e-mail %s ×%d", e.id, mid, n))
			}
		}
		// Webhooks: at least one successful delivery per webhook-id at the escrow's partner.
		for _, id := range x.hooks {
			seenHook[e.partner][id] = true
			switch n := hooks[e.partner][id]; {
			case n == 0:
				lost++
				fail(e.id, "webhook %s at %s: no successful delivery", id, e.partner)
			case n > 1:
				redelivered += n - 1
				redeliveredIDs = append(redeliveredIDs, fmt.Sprintf("%s webhook %s at %s ×%d (%s)", e.id, id, e.partner, n, s.requestsOf(e.partner, id)+fmt.Sprintf("; job done %d, failed %d", done["webhook_escrow_status_changed:event-"+id], failedRuns["webhook_escrow_status_changed:event-"+id])))
			}
		}
		for fid := range x.flows {
			if name, _, _ := strings.Cut(fid, ":"); resolvedFlows[fid] && name != "fund" && name != "dispute" {
				seenAudit[evID(e.id, name+"_failed")] = true // allowed, not required
			}
		}
		for _, id := range x.audits {
			seenAudit[id] = true
			if audits[id] == 0 {
				lost++
				fail(e.id, "audit %s: none", id)
			}
		}
		// Dead letters: exactly the capture that cannot succeed.
		open := openDL[e.id]
		delete(openDL, e.id)
		switch {
		case x.deadLetter && (len(open) != 1 || open[0].Type != (payloads.StripeCapturePayment{}).TaskType() || open[0].Why != deadletter.WhyPermanent):
			fail(e.id, "dead letters: got %s, want one open, permanent, of its capture", describe(open))
		case !x.deadLetter && len(open) > 0:
			fail(e.id, "dead letters: got %s, want none", describe(open))
		}
		// Flows.
		for fid, want := range x.flows {
			v, err := store.Status(ctx, fid)
			if err != nil || v.State != want {
				fail(e.id, "flow %s: got %q (%v), want %s", fid, v.State, err, want)
			}
		}
	}
	for tx, open := range openDL {
		fail("", "dead letters of no soak escrow (%q): %s", tx, describe(open))
	}
	// Effects nobody asked for.
	for mid, n := range mailCount {
		if !seenMail[mid] {
			doubled += n
			fail("", "e-mail %s to %s: not one of a committed transition", mid, payloads.MaskEmail(mailTo[mid]))
		}
	}
	for pid, got := range hooks {
		for id, n := range got {
			if !seenHook[pid][id] {
				doubled += n
				fail("", "webhook %s delivered to %s: not an event of its escrows", id, pid)
			}
		}
	}
	for id := range audits {
		if !seenAudit[id] {
			doubled++
			fail("", "audit %s: not an event of a committed transition", id)
		}
	}
	for pi, n := range captured {
		if !seenPI[pi] {
			doubled += n
			fail("", "capture of %s: no escrow", pi)
		}
	}
	if page, err := store.List(ctx, flows.Filter{State: flows.StateRunning}, "", flows.MaxListLimit); err != nil || len(page.Items) > 0 {
		fail("", "running flows after the drain: %d (%v)", len(page.Items), err)
	}
	if err := s.monitorHealthy(); err != nil {
		fail("", "%v", err)
	}
	keysAfter, err := s.keysWithoutTTL(ctx)
	if err != nil {
		fail("", "sample the Redis keys: %v", err)
	} else if keysBefore != nil {
		for p, n := range soak.Growth(keysBefore, keysAfter, 3) {
			fail("", "Redis keys without an expiry %q: %d a third into the run, %d at the end", p, n[0], n[1])
		}
	}
	scanLogs(t, s)

	summary := fmt.Sprintf("soak: seed %d, %d s, escrows %d, transitions %d, jobs %d, faults %s, lost %d, doubled %d",
		seed, int(faultsEnd.Seconds()), escrows, transitions, len(done), soak.CountLine(plan), lost, doubled)
	t.Logf("redelivered at-least-once effects (same Message-ID or webhook-id, absorbed by the peer): %d %v; dead letters resolved by redelivery or requeue: %d; drain %.1fs",
		redelivered, redeliveredIDs[:min(len(redeliveredIDs), 20)], requeued, drain.Seconds())
	if len(bad) > 0 || len(global) > 0 {
		s.mu.Lock()
		timeline := strings.Join(s.timeline, "\n")
		s.mu.Unlock()
		var lines []string
		ids := sortedKeys(bad)
		for _, id := range ids[:min(len(ids), 50)] {
			var path path
			for _, e := range cases {
				if e.id == id {
					path = e.path
				}
			}
			lines = append(lines, fmt.Sprintf("  %s (%s, %s): %s", id, path, rows[id].status, strings.Join(bad[id], "; ")))
		}
		t.Errorf("seed %d: %d escrows broke an invariant, %d other findings\nfault timeline:\n%s\nescrows:\n%s\nother:\n  %s",
			seed, len(bad), len(global), timeline, strings.Join(lines, "\n"), strings.Join(global, "\n  "))
	}
	fmt.Println(summary)
	t.Log(summary)
}

func describe(es []deadletter.Entry) string {
	if len(es) == 0 {
		return "none"
	}
	var parts []string
	for _, e := range es {
		parts = append(parts, fmt.Sprintf("%s (%s, %s: %s)", e.ID, e.State, e.Why, e.Error))
	}
	return strings.Join(parts, ", ")
}

// scanLogs fails when a process's output shows a secret or a raw
// customer address.
func scanLogs(t *testing.T, s *system) {
	s.mu.Lock()
	outs := make([]string, 0, len(s.outputs))
	for _, o := range s.outputs {
		outs = append(outs, o())
	}
	s.mu.Unlock()
	for i, out := range outs {
		for what, secret := range map[string]string{"Stripe key": stripeKey, "monitor token": apiToken} {
			if strings.Contains(out, secret) {
				t.Errorf("process %d: its output contains the %s", i, what)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			if addressPattern.MatchString(line) {
				t.Errorf("process %d: its output contains a raw customer address: %s", i, addressPattern.ReplaceAllString(tail(line, 600), "<address>"))
				break
			}
		}
	}
}

// addressPattern matches the customer addresses of the workload, unmasked
// (a masked one, "s***@…", does not match).
var addressPattern = regexp.MustCompile(`soak-(?:buyer|seller)-[0-9]+@customers\.example\.com`)
