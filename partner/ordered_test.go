package partner_test

// Ordered partners end to end: real workers (asynq servers, retry gate,
// dead-letter ledger), the real handlers and sender, real Redis (single
// server and Cluster) and a verifying HTTP receiver.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/internal/eventorder"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
)

// orderWorld is one Redis, one partner endpoint "acme", a dead-letter
// ledger and the workers of one test.
type orderWorld struct {
	t        testing.TB
	opt      asynq.RedisConnOpt
	rc       redis.UniversalClient
	client   *tasks.Client
	insp     *tasks.Inspector
	ledger   deadletter.Ledger
	desk     *repair.Desk
	recv     *escrowtest.Partner
	regPath  string
	schedule []time.Duration
	// states are the partner states of the workers, in start order.
	states []*partner.State
	// recheck is the workers' StateConfig.OrderRecheck (default 20 s).
	recheck time.Duration
}

// newOrderWorld starts the receiver and writes a registry with acme
// ordered or not; schedule is the redelivery schedule.
func newOrderWorld(t testing.TB, opt asynq.RedisConnOpt, ordered bool, schedule ...time.Duration) *orderWorld {
	t.Helper()
	w := &orderWorld{t: t, opt: opt, recv: escrowtest.StartPartner(t), regPath: filepath.Join(t.TempDir(), "partners.json"), schedule: schedule}
	w.rc = opt.MakeRedisClient().(redis.UniversalClient)
	w.client, w.insp = tasks.NewClient(opt), tasks.NewInspector(opt)
	w.ledger = escrowtest.Ledger(t, "file")
	w.desk = repair.NewDesk(w.insp, w.ledger)
	t.Cleanup(func() { w.client.Close(); w.insp.Close(); w.rc.Close() })
	w.writeRegistry(ordered)
	return w
}

// writeRegistry replaces the registry file atomically.
func (w *orderWorld) writeRegistry(ordered bool) {
	w.t.Helper()
	b, _ := json.Marshal(map[string]any{"partners": map[string]any{
		"acme": map[string]any{"url": w.recv.URL, "secret": w.recv.Secret, "ordered": ordered, "maxConcurrency": 8},
	}})
	tmp := w.regPath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(tmp, w.regPath); err != nil {
		w.t.Fatal(err)
	}
}

// startWorker starts one worker as cmd/server wires it: watcher (polling
// the registry), partner state, sender, redelivery loop.
func (w *orderWorld) startWorker() {
	t := w.t
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	rc := w.opt.MakeRedisClient().(redis.UniversalClient)
	watcher, err := partner.NewWatcher(w.regPath, true, log)
	if err != nil {
		t.Fatal(err)
	}
	recheck := cmp.Or(w.recheck, 20*time.Second)
	state, err := partner.NewState(partner.StateConfig{Redis: rc, BreakerFailures: 1000, OrderRecheck: recheck, OrphanGrace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.states = append(w.states, state)
	rd, err := partner.NewRedelivery(partner.RedeliveryConfig{
		Redis: rc, DeadLetters: partner.LedgerDeadLetters{Desk: w.desk}, State: state,
		Registry: watcher.Registry, Schedule: w.schedule, Poll: 50 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watcher.OnChange(func(reg *partner.Registry) { rd.RegistryChanged(context.WithoutCancel(ctx), reg) })
	sender := partner.NewSender(nil, partner.SenderOptions{AllowPrivateNetworks: true, Timeout: 2 * time.Second, Watcher: watcher, State: state})
	deps := escrowtest.NewAdapters().Deps(w.client, log)
	deps.Sender = sender
	mux, err := handlers.NewServeMux(deps)
	if err != nil {
		t.Fatal(err)
	}
	wk, err := worker.New(worker.Config{Redis: w.opt, Concurrency: 8, FetchLoops: 1, DeadLetters: w.ledger,
		Archived: rd.Archived, Logger: log, ShutdownTimeout: 2 * time.Second}, mux)
	if err != nil {
		t.Fatal(err)
	}
	if err := wk.Start(); err != nil {
		t.Fatal(err)
	}
	var bg sync.WaitGroup
	bg.Go(func() { watcher.Run(ctx, 50*time.Millisecond, nil) })
	bg.Go(func() { rd.Run(ctx) })
	t.Cleanup(func() { wk.Shutdown(); cancel(); bg.Wait(); rc.Close() })
}

// event enqueues a status event of escrow tx to acme, with one retry
// (one failed run takes 2 s, not 14 s) and returns its job ID.
func (w *orderWorld) event(eventID, tx string) string {
	w.t.Helper()
	return w.eventWithRetries(eventID, tx, 1)
}

// answer makes the receiver answer 503 to the events for which fail
// says so, 204 to the others.
func (w *orderWorld) answer(fail func(eventID string) bool) {
	w.recv.Answer(func(n int) escrowtest.Answer {
		if fail(w.recv.Requests()[n].ID) {
			return escrowtest.Answer{Status: 503}
		}
		return escrowtest.Answer{}
	})
}

// requested is how many requests for eventID the receiver got.
func (w *orderWorld) requested(eventID string) int {
	n := 0
	for _, r := range w.recv.Requests() {
		if r.ID == eventID {
			n++
		}
	}
	return n
}

// awaitDelivered waits until every event was answered 2xx.
func (w *orderWorld) awaitDelivered(timeout time.Duration, ids ...string) {
	w.t.Helper()
	escrowtest.Eventually(w.t, fmt.Sprintf("delivery of %v", ids), timeout, func() bool {
		d := w.recv.Delivered()
		for _, id := range ids {
			if d[id] == 0 {
				return false
			}
		}
		return true
	})
}

// awaitOpenDeadLetter waits until job id is an open dead letter, archived
// by asynq.
func (w *orderWorld) awaitOpenDeadLetter(id string, timeout time.Duration) deadletter.Entry {
	w.t.Helper()
	var e deadletter.Entry
	escrowtest.Eventually(w.t, "dead letter "+id, timeout, func() bool {
		var err error
		e, err = w.ledger.Get(context.Background(), id)
		return err == nil && e.State == deadletter.StateOpen
	})
	// The worker records it just before asynq archives it.
	escrowtest.AwaitState(w.t, w.insp, id, "archived", timeout)
	return e
}

// checkInOrder fails unless every request for each event of events came
// after the last request for the event before it: no later event was
// sent, not even attempted, before the earlier one was done.
func (w *orderWorld) checkInOrder(events ...string) {
	w.t.Helper()
	reqs := w.recv.Requests()
	first, last := map[string]int{}, map[string]int{}
	for i, r := range reqs {
		if _, ok := first[r.ID]; !ok {
			first[r.ID] = i
		}
		last[r.ID] = i
	}
	for i := 1; i < len(events); i++ {
		prev, cur := events[i-1], events[i]
		if first[cur] <= last[prev] {
			var got []string
			for _, r := range reqs {
				got = append(got, fmt.Sprintf("%s:%d", r.ID, r.Status))
			}
			w.t.Fatalf("%s was requested (request %d) before %s was done (its last request %d); arrivals: %s",
				cur, first[cur], prev, last[prev], strings.Join(got, " "))
		}
	}
}

func localRedis(t testing.TB) asynq.RedisConnOpt {
	t.Helper()
	opt, err := asynq.ParseRedisURI(peertest.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// The partner is down while three events of esc-a and one of esc-b are
// created: the later events of esc-a are not even attempted while the
// first is failing, becomes a dead letter (which says two events wait for
// it) and is redelivered; esc-b's event is tried meanwhile. Once the
// partner is back, esc-a's events arrive in sequence.
func TestOrderedPartnerGetsEachEscrowsEventsInSequence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opt     func(testing.TB) asynq.RedisConnOpt
		workers int
	}{
		{"one worker", localRedis, 1},
		{"two workers", localRedis, 2},
		{"redis cluster", func(t testing.TB) asynq.RedisConnOpt {
			return escrowtest.RedisOpt(t, map[string]string{"REDIS_CLUSTER_ADDRS": peertest.StartCluster(t).Env()})
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newOrderWorld(t, tc.opt(t), true, 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond, time.Second, time.Second)
			var down atomic.Bool
			down.Store(true)
			w.answer(func(string) bool { return down.Load() })
			for range tc.workers {
				w.startWorker()
			}
			a1, a2, a3 := w.event("evt-a1", "esc-a"), w.event("evt-a2", "esc-a"), w.event("evt-a3", "esc-a")
			w.event("evt-b1", "esc-b")

			dl := w.awaitOpenDeadLetter(a1, 30*time.Second)
			escrowtest.Eventually(t, "esc-b's event tried while esc-a's first fails", 10*time.Second, func() bool { return w.requested("evt-b1") > 0 })
			escrowtest.Eventually(t, "evt-a1 redelivered", 20*time.Second, func() bool { return w.requested("evt-a1") > 2 })
			if n, err := w.states[0].WaitingBehind(context.Background(), dl.ID, dl.Type, dl.Payload); err != nil || n != 2 {
				t.Errorf("events waiting behind the dead letter %s: got %d (%v), want 2", a1, n, err)
			}
			if st, err := w.states[0].Status(context.Background(), "acme"); err != nil || !st.Ordered || st.WaitingInOrder < 1 {
				t.Errorf("acme's status: got %+v (%v), want ordered with deliveries waiting in order", st, err)
			}
			for _, id := range []string{"evt-a2", "evt-a3"} {
				if n := w.requested(id); n != 0 {
					t.Fatalf("%s: got %d requests while evt-a1 was not delivered, want none", id, n)
				}
			}

			down.Store(false)
			w.awaitDelivered(30*time.Second, "evt-a1", "evt-a2", "evt-a3", "evt-b1")
			w.checkInOrder("evt-a1", "evt-a2", "evt-a3")
			for _, id := range []string{a2, a3} {
				j, err := w.insp.Status(context.Background(), id)
				if err != nil || j.Attempts != 1 {
					t.Errorf("%s: got %d attempts (%v), want 1: its wait spent none", id, j.Attempts, err)
				}
			}
		})
	}
}

// An operator's discard of the dead letter at the head releases the
// events waiting behind it.
func TestDiscardOfTheHeadReleasesTheEscrowsLaterEvents(t *testing.T) {
	w := newOrderWorld(t, localRedis(t), true, time.Hour)
	w.answer(func(id string) bool { return id == "evt-d1" })
	w.startWorker()
	d1 := w.event("evt-d1", "esc-d")
	w.event("evt-d2", "esc-d")
	w.awaitOpenDeadLetter(d1, 30*time.Second)
	escrowtest.Eventually(t, "evt-d2 counted as waiting in order", 10*time.Second, func() bool {
		st, err := w.states[0].Status(context.Background(), "acme")
		return err == nil && st.WaitingInOrder == 1
	})
	if n := w.requested("evt-d2"); n != 0 {
		t.Fatalf("evt-d2: got %d requests before the head was resolved, want none", n)
	}
	if _, err := w.desk.Discard(context.Background(), d1, "ops", "the partner has it already"); err != nil {
		t.Fatal(err)
	}
	w.awaitDelivered(10*time.Second, "evt-d2")
	w.checkInOrder("evt-d1", "evt-d2")
	escrowtest.Eventually(t, "nothing waiting in order", 10*time.Second, func() bool {
		st, err := w.states[0].Status(context.Background(), "acme")
		return err == nil && st.WaitingInOrder == 0
	})
}

// A head whose redelivery schedule ends is a final dead letter: the next
// event goes.
func TestEndOfTheHeadsScheduleReleasesTheEscrowsLaterEvents(t *testing.T) {
	w := newOrderWorld(t, localRedis(t), true, 200*time.Millisecond)
	w.answer(func(id string) bool { return id == "evt-s1" })
	w.startWorker()
	s1 := w.event("evt-s1", "esc-s")
	w.event("evt-s2", "esc-s")
	w.awaitDelivered(40*time.Second, "evt-s2")
	w.checkInOrder("evt-s1", "evt-s2")
	if got := w.requested("evt-s1"); got != 4 {
		t.Errorf("evt-s1: got %d requests, want 4 (two runs of two attempts)", got)
	}
	if e, err := w.ledger.Get(context.Background(), s1); err != nil || e.State != deadletter.StateOpen {
		t.Errorf("evt-s1 dead letter: got %+v (%v), want it open", e.State, err)
	}
}

// Turning ordering on holds a new event behind an open dead letter;
// turning it off sends the waiting event without waiting for the head.
func TestRegistryReloadTurnsOrderingOnAndOff(t *testing.T) {
	w := newOrderWorld(t, localRedis(t), false, time.Hour)
	w.answer(func(id string) bool { return id == "evt-r1" })
	w.startWorker()
	r1 := w.event("evt-r1", "esc-r")
	w.event("evt-r2", "esc-r")
	w.awaitDelivered(10*time.Second, "evt-r2") // unordered: not held up
	w.awaitOpenDeadLetter(r1, 30*time.Second)

	w.writeRegistry(true)
	escrowtest.Eventually(t, "acme ordered", 10*time.Second, func() bool {
		st, err := w.states[0].Status(context.Background(), "acme")
		return err == nil && st.Ordered
	})
	w.event("evt-r3", "esc-r")
	escrowtest.Eventually(t, "evt-r3 waiting in order", 10*time.Second, func() bool {
		st, err := w.states[0].Status(context.Background(), "acme")
		return err == nil && st.WaitingInOrder == 1
	})
	if n := w.requested("evt-r3"); n != 0 {
		t.Fatalf("evt-r3: got %d requests while ordered behind an open dead letter, want none", n)
	}

	w.writeRegistry(false)
	w.awaitDelivered(10*time.Second, "evt-r3")
	if e, err := w.ledger.Get(context.Background(), r1); err != nil || e.State != deadletter.StateOpen {
		t.Errorf("evt-r1: got %v (%v), want still an open dead letter", e.State, err)
	}
}

// An event registered whose job never came (its enqueue failed after the
// registration) does not block its escrow: after the grace it is dropped
// and the next event goes. A duplicate enqueue registers nothing new.
func TestOrphanHeadIsDropped(t *testing.T) {
	w := newOrderWorld(t, localRedis(t), true, time.Hour)
	w.startWorker()
	ctx := context.Background()
	const ghost = "webhook_escrow_status_changed:event-evt-ghost"
	if _, err := eventorder.Register(ctx, w.rc, "esc-o", "acme", ghost, 0); err != nil {
		t.Fatal(err)
	}
	o2 := w.event("evt-o2", "esc-o")
	w.awaitDelivered(20*time.Second, "evt-o2")
	if got, err := w.rc.ZScore(ctx, eventorder.Key("esc-o", "acme"), ghost).Result(); err != nil || got >= 0 {
		t.Errorf("ghost's score: got %v (%v), want it released (negative)", got, err)
	}

	before, _ := w.rc.ZRangeWithScores(ctx, eventorder.Key("esc-o", "acme"), 0, -1).Result()
	task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
		EventID: "evt-o2", PartnerID: "acme", TransactionID: "esc-o", PreviousStatus: payloads.StatusPending,
		Status: payloads.StatusFunded, OccurredAt: "2026-12-03T12:00:00Z",
	})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := w.client.Enqueue(ctx, task); id != o2 || err == nil {
		t.Fatalf("duplicate of evt-o2: got %s, %v; want ErrDuplicate", id, err)
	}
	after, _ := w.rc.ZRangeWithScores(ctx, eventorder.Key("esc-o", "acme"), 0, -1).Result()
	if !slices.Equal(before, after) {
		t.Errorf("order set after a duplicate: got %v, want unchanged %v", after, before)
	}
}
