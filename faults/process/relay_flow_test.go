package process_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// relayFlow is one flow added through the outbox and where its steps'
// effects are counted.
type relayFlow struct {
	f                  *flows.Flow
	pi, event, auditID string
}

// TestRelayKilledMidBatchStartsEachFlowOnce adds release flows (a capture,
// then the partner's webhook and an audit after it) through flows.Add in
// committed PostgreSQL transactions. A worker process (w, no relay) runs
// flows throughout. Server a runs the outbox relay with the crash hook
// ESCROWJOBS_TEST_KILL_RELAY_AFTER_ENQUEUE: inside its first batch, after
// the batch's start jobs are in Redis and before the batch's rows are
// deleted (the transaction still open), it SIGKILLs itself; the rows stay.
// More flows are committed while no relay runs; then server b starts its
// relay, which claims the killed batch again (its start jobs are found in
// Redis: duplicates, counted done, while w may be running or have finished
// those flows already) and the new rows.
//
// At the end the outbox is empty, every flow is completed, its start job
// and each of its steps ran exactly once ("job done" lines of every
// server, no "job failed"), each capture was made once at the stateful
// Stripe, each webhook delivered once to the verifying receiver, each
// audit written once, and no job is left leased.
//
// How it can fail: a relay that deleted its rows before its enqueues were
// in Redis would lose the flows of the killed batch (never completed); a
// start job whose ID was not derived from the flow ID would be enqueued
// again by b and run twice (two "job done" lines), and a Start that did
// not refuse an existing flow would enqueue its capture again after it
// ran: a second run of a step.
func TestRelayKilledMidBatchStartsEachFlowOnce(t *testing.T) {
	t.Parallel()
	h := setup(t, false)
	dbURL := peertest.Postgres(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := outbox.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}

	const first, second, perTx = 40, 60, 10
	var all []relayFlow
	add := func(from, to int) {
		t.Helper()
		for i := from; i < to; i += perTx {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for j := i; j < min(i+perTx, to); j++ {
				esc := fmt.Sprintf("esc-pf-relay-%d", j)
				rf := relayFlow{pi: fmt.Sprintf("pi_pfrelay%d", j), event: fmt.Sprintf("pf-relay-evt-%d", j), auditID: fmt.Sprintf("pf-relay-aud-%d", j)}
				h.stripe.AddIntent(rf.pi, "requires_capture", 10000)
				rf.f, err = flows.New("release", esc).
					Step("capture", payloads.StripeCapturePayment{TransactionID: esc, PaymentIntentID: rf.pi, AmountToCapture: 9000}).
					Step("partner-webhook", payloads.WebhookEscrowStatusChanged{EventID: rf.event, PartnerID: partner, TransactionID: esc,
						PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: occurredAt}, flows.After("capture")).
					Step("audit", payloads.AuditLogCreated{EventID: rf.auditID, Actor: "ops", Action: "escrow.released", TransactionID: esc, OccurredAt: occurredAt},
						flows.After("capture")).
					Build()
				if err != nil {
					t.Fatal(err)
				}
				if err := flows.Add(ctx, tx, rf.f); err != nil {
					t.Fatal(err)
				}
				all = append(all, rf)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	backlog := func() int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+outbox.Table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	w := h.startServer(t, "w", nil)
	add(0, first)
	// a's worker polls once at its start and then sleeps an hour (one fetch
	// loop, no wake-up on enqueue): only its relay takes part.
	a := h.startServer(t, "a", map[string]string{
		"OUTBOX_DATABASE_URL": dbURL, "ESCROWJOBS_TEST_KILL_RELAY_AFTER_ENQUEUE": "1",
		"WORKER_FETCH_LOOPS": "1", "WORKER_POLL_INTERVAL": "1h", "WORKER_DISABLE_WAKE": "true",
	})
	if err, exited := a.Wait(60 * time.Second); !exited || err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("server a with the kill hook: got exit %v (exited %v), want killed by SIGKILL\n%s", err, exited, a.Output())
	}
	if !strings.Contains(a.Output(), "killing this process between enqueue and delete") {
		t.Fatalf("the kill hook did not fire:\n%s", a.Output())
	}
	var inRedis int
	for _, rf := range all {
		if _, err := h.insp.Status(ctx, flows.StartType+":"+rf.f.ID()); err == nil {
			inRedis++
		}
	}
	kept := backlog()
	// The relay's two claimers split the rows (FOR UPDATE SKIP LOCKED): the
	// kill may also catch the other batch before its enqueues are done.
	t.Logf("relay a SIGKILLed inside its first batch: %d rows kept in the outbox, %d start jobs of them already in Redis", kept, inRedis)
	if kept != first || inRedis == 0 {
		t.Fatalf("after the kill: got %d rows kept (%d start jobs in Redis), want all %d rows kept and their start jobs in Redis", kept, inRedis, first)
	}

	add(first, first+second)
	b := h.startServer(t, "b", map[string]string{"OUTBOX_DATABASE_URL": dbURL})

	rc := h.opt.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	store := flows.NewStore(rc, h.insp)
	for _, rf := range all {
		escrowtest.Eventually(t, "flow "+rf.f.ID()+" completed", 90*time.Second, func() bool {
			v, err := store.Status(ctx, rf.f.ID())
			return err == nil && v.State == flows.StateCompleted
		})
	}
	escrowtest.Eventually(t, "the outbox emptied", 30*time.Second, func() bool { return backlog() == 0 })
	escrowtest.NoLeases(t, h.opt)

	// Runs of every job, from the "job done" / "job failed" lines of all three servers.
	done, failed := escrowtest.JobRuns(w.Output(), a.Output(), b.Output())
	captured, _, _, _ := h.stripe.Effects()
	hooks, refused := h.hooks.Deliveries()
	audits := map[string]int{}
	for _, l := range readAudit(t, filepath.Join(h.dir, "audit.jsonl")) {
		audits[l.EventID]++
	}
	var runs int
	for _, rf := range all {
		ids := []string{flows.StartType + ":" + rf.f.ID()}
		for _, id := range rf.f.JobIDs() {
			ids = append(ids, id)
		}
		for _, id := range ids {
			runs += done[id]
			if done[id] != 1 || failed[id] != 0 {
				t.Errorf("flow %s: job %s done %d times, failed %d; want done once", rf.f.ID(), id, done[id], failed[id])
			}
			if st, err := h.insp.Status(ctx, id); err != nil || st.State != "completed" {
				t.Errorf("flow %s: job %s: got %+v (%v), want completed", rf.f.ID(), id, st, err)
			}
		}
		if captured[rf.pi] != 1 || hooks[rf.event] != 1 || audits[rf.auditID] != 1 {
			t.Errorf("flow %s: capture made %d times, webhook delivered %d, audit written %d; want each once",
				rf.f.ID(), captured[rf.pi], hooks[rf.event], audits[rf.auditID])
		}
	}
	if len(refused) > 0 {
		t.Errorf("refused deliveries: %v", refused)
	}
	if n := len(done) - runs; n > 0 {
		t.Logf("%d other jobs ran (the servers' own)", n)
	}

	b.Signal(syscall.SIGTERM)
	if err, exited := b.Wait(30 * time.Second); !exited || err != nil {
		t.Fatalf("SIGTERM b: got exit %v (exited %v), want a clean exit", err, exited)
	}
	var stopped struct{ Enqueued, Duplicates, Failures int }
	for _, line := range strings.Split(b.Output(), "\n") {
		if strings.Contains(line, `"outbox relay stopped"`) {
			_ = json.Unmarshal([]byte(line), &stopped)
		}
	}
	t.Logf("flows %d (%d in the killed batch, %d committed while no relay ran); relay b: %+v; job runs %d (start jobs and steps, once each)",
		len(all), first, second, stopped, runs)
	if stopped.Duplicates != inRedis || stopped.Enqueued != len(all)-inRedis || stopped.Failures != 0 {
		t.Errorf("relay b: got %+v, want %d duplicates (the killed batch), %d enqueued, 0 failures", stopped, inRedis, len(all)-inRedis)
	}
	w.Signal(syscall.SIGTERM)
	if _, ok := w.Wait(15 * time.Second); !ok {
		t.Errorf("server w did not exit within 15 s of SIGTERM")
	}
	h.scanLogs(t)
}
