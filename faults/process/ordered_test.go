package process_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// An ordered partner served by two cmd/server worker processes that share
// one Redis, one registry and one dead-letter ledger. The partner is down
// (503) while three events of esc-pa and one of esc-pb are created: the
// later events of esc-pa are not even requested while the first fails
// (it is retried and redelivered across the processes), esc-pb's event is
// tried meanwhile; once the partner is back, esc-pa's events arrive in
// sequence and every event is delivered exactly once. In the second case
// the worker process holding the head in flight (its request hangs) is
// killed (SIGKILL) while the later events wait: they stay held while
// asynq recovers the head from the dead worker's lease, and the surviving
// process keeps the order and delivers everything.
func TestOrderedPartnerAcrossTwoWorkerProcesses(t *testing.T) {
	t.Parallel() // the kill case is mostly a wait for asynq's lease recovery (60–120 s)
	for _, tc := range []struct {
		name string
		kill bool
	}{
		{"both workers up", false},
		{"one worker killed while events wait", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, false)
			recv := escrowtest.StartPartner(t)
			reg, _ := json.Marshal(map[string]any{"partners": map[string]any{
				partner:      map[string]string{"url": h.hooks.URL + "/hooks/escrow", "secret": webhookSecret},
				"pf-ordered": map[string]any{"url": recv.URL, "secret": recv.Secret, "ordered": true},
			}})
			if err := os.WriteFile(h.registry, reg, 0o600); err != nil {
				t.Fatal(err)
			}
			var up atomic.Bool
			recv.Answer(func(n int) escrowtest.Answer {
				switch {
				case up.Load():
					return escrowtest.Answer{}
				case tc.kill && recv.Requests()[n].ID == "evt-pa1":
					// Held until the sender gives up: the head is in
					// flight in a worker when it is killed.
					return escrowtest.Answer{Hang: true}
				}
				return escrowtest.Answer{Status: 503}
			})
			env := map[string]string{
				"WEBHOOK_BREAKER_FAILURES":    "1000",
				"WEBHOOK_REDELIVERY_SCHEDULE": strings.TrimSuffix(strings.Repeat("1s,", 20), ","),
				"DEAD_LETTER_PATH":            filepath.Join(h.dir, "dead-letters.jsonl"), // one ledger for both
			}
			if tc.kill {
				env["WEBHOOK_TIMEOUT"] = "12s" // longer than asynq's 5 s heartbeat, which shows the head in flight
			}
			h.startServer(t, "a", env)
			h.startServer(t, "b", env)

			ctx := context.Background()
			ids := map[string]string{}
			for _, ev := range []struct{ id, tx string }{
				{"evt-pa1", "esc-pa"}, {"evt-pa2", "esc-pa"}, {"evt-pa3", "esc-pa"}, {"evt-pb1", "esc-pb"},
			} {
				task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
					EventID: ev.id, PartnerID: "pf-ordered", TransactionID: ev.tx, PreviousStatus: payloads.StatusPending,
					Status: payloads.StatusFunded, OccurredAt: occurredAt,
				})
				if err != nil {
					t.Fatal(err)
				}
				id, err := h.client.Enqueue(ctx, task)
				if err != nil {
					t.Fatalf("enqueue %s: %v", ev.id, err)
				}
				ids[ev.id] = id
			}
			t.Cleanup(func() {
				if !t.Failed() {
					return
				}
				// The timeline of a failure: what the partner saw and where
				// each event's job stands.
				t.Logf("arrivals: %s", arrivals(recv))
				for _, ev := range []string{"evt-pa1", "evt-pa2", "evt-pa3", "evt-pb1"} {
					j, err := h.insp.Status(context.Background(), ids[ev])
					t.Logf("%s: job %s state %q, attempts %d of %d, next %v, last error %q (%v)",
						ev, ids[ev], j.State, j.Attempts, j.MaxRetry+1, j.NextProcessAt, j.LastError, err)
				}
			})
			requested := func(id string) int {
				n := 0
				for _, r := range recv.Requests() {
					if r.ID == id {
						n++
					}
				}
				return n
			}
			escrowtest.Eventually(t, "evt-pa1 retried and esc-pb's event tried while the partner is down", 120*time.Second, func() bool {
				return requested("evt-pa1") >= 2 && requested("evt-pb1") >= 1
			})
			later := func(when string) {
				t.Helper()
				for _, id := range []string{"evt-pa2", "evt-pa3"} {
					if n := requested(id); n != 0 {
						t.Fatalf("%s: %s, got %d requests while evt-pa1 was not delivered, want none; arrivals: %s", id, when, n, arrivals(recv))
					}
				}
			}
			later("partner down")
			if tc.kill {
				// The Redis is this test's own: every asynq server in it
				// belongs to one of its two processes.
				var holder int
				escrowtest.Eventually(t, "evt-pa1 in flight in a worker process", 120*time.Second, func() bool {
					servers, err := h.insp.Asynq().Servers()
					if err != nil {
						return false
					}
					for _, s := range servers {
						for _, w := range s.ActiveWorkers {
							if w.TaskID == ids["evt-pa1"] {
								holder = s.PID
								return true
							}
						}
					}
					return false
				})
				if err := syscall.Kill(holder, syscall.SIGKILL); err != nil {
					t.Fatalf("SIGKILL of worker process %d: %v", holder, err)
				}
				t.Logf("SIGKILL of the worker process holding evt-pa1 (pid %d); arrivals so far: %s", holder, arrivals(recv))
				n := requested("evt-pa1")
				escrowtest.Eventually(t, "evt-pa1 recovered from the killed worker and tried again", 240*time.Second, func() bool { return requested("evt-pa1") > n })
				later("worker a killed")
			}

			up.Store(true)
			escrowtest.Eventually(t, "every event delivered", 300*time.Second, func() bool {
				d := recv.Delivered()
				return d["evt-pa1"] > 0 && d["evt-pa2"] > 0 && d["evt-pa3"] > 0 && d["evt-pb1"] > 0
			})
			// Late duplicates would arrive after a job's redo: let the
			// workers settle before counting.
			for _, id := range []string{"evt-pa1", "evt-pa2", "evt-pa3", "evt-pb1"} {
				escrowtest.AwaitState(t, h.insp, ids[id], "completed", 120*time.Second)
			}

			reqs := recv.Requests()
			first, last, delivered := map[string]int{}, map[string]int{}, map[string]int{}
			for i, r := range reqs {
				if r.VerifyErr != nil {
					t.Errorf("request %d (%s): signature does not verify: %v", i, r.ID, r.VerifyErr)
				}
				if _, ok := first[r.ID]; !ok {
					first[r.ID] = i
				}
				last[r.ID] = i
				if r.Status >= 200 && r.Status <= 299 {
					delivered[r.ID] = i
				}
			}
			for _, pair := range [][2]string{{"evt-pa1", "evt-pa2"}, {"evt-pa2", "evt-pa3"}} {
				if first[pair[1]] <= last[pair[0]] {
					t.Errorf("%s was requested (request %d) before %s was done (its last request %d); arrivals: %s",
						pair[1], first[pair[1]], pair[0], last[pair[0]], arrivals(recv))
				}
			}
			if first["evt-pb1"] >= delivered["evt-pa1"] {
				t.Errorf("evt-pb1's first request is request %d, after evt-pa1's delivery (%d): want it tried while esc-pa waits; arrivals: %s",
					first["evt-pb1"], delivered["evt-pa1"], arrivals(recv))
			}
			for id, n := range recv.Delivered() {
				if n != 1 {
					t.Errorf("%s: delivered %d times, want exactly once; arrivals: %s", id, n, arrivals(recv))
				}
			}
		})
	}
}

// arrivals is the receiver's log, "webhook-id:status@seconds" in arrival
// order, the seconds since the first request (for a failure's timeline).
func arrivals(recv *escrowtest.Partner) string {
	var out []string
	reqs := recv.Requests()
	for _, r := range reqs {
		out = append(out, fmt.Sprintf("%s:%d@%.1fs", r.ID, r.Status, r.At.Sub(reqs[0].At).Seconds()))
	}
	return strings.Join(out, " ")
}
