package process_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/redis/go-redis/v9"
)

// A worker killed right after a flow step's side effect (the captures are
// made at Stripe, whose answers the worker never reads) leaves its flows
// to asynq's lease recovery: a second worker process reruns each capture
// (Stripe replays it by Idempotency-Key: one capture), whose advancement
// then enqueues the steps after it, and each of those runs exactly once.
func TestWorkerKilledAfterAFlowStepsEffectAdvancesTheFlowOnce(t *testing.T) {
	t.Parallel() // mostly a wait for asynq's lease recovery
	h := setup(t, false)
	h.stripe.SetDelay(func(r *http.Request) time.Duration {
		if r.Method == http.MethodPost {
			return time.Minute // the effect is made, the answer never arrives before the kill
		}
		return 0
	})
	const n = 3
	ctx := context.Background()
	var ids, pis, audits []string
	for i := range n {
		esc := fmt.Sprintf("esc-pf-flow-%d", i)
		pi := fmt.Sprintf("pi_pfflow%d", i)
		h.stripe.AddIntent(pi, "requires_capture", 10000)
		ev, aud := "pf-flow-evt-"+fmt.Sprint(i), "pf-flow-aud-"+fmt.Sprint(i)
		f, err := flows.New("release", esc).
			Step("capture", payloads.StripeCapturePayment{TransactionID: esc, PaymentIntentID: pi, AmountToCapture: 9000}).
			Step("partner-webhook", payloads.WebhookEscrowStatusChanged{EventID: ev, PartnerID: partner, TransactionID: esc,
				PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: occurredAt}, flows.After("capture")).
			Step("audit", payloads.AuditLogCreated{EventID: aud, Actor: "ops", Action: "escrow.released", TransactionID: esc, OccurredAt: occurredAt},
				flows.After("capture")).
			Build()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := flows.Start(ctx, h.client, f); err != nil {
			t.Fatal(err)
		}
		ids, pis, audits = append(ids, f.ID()), append(pis, pi), append(audits, aud)
	}

	a := h.startServer(t, "a", nil)
	escrowtest.Eventually(t, "every capture made at Stripe and its answer held", 30*time.Second, func() bool {
		captured, _, _, _ := h.stripe.Effects()
		return len(captured) == n && h.stripe.Inflight() == n
	})
	a.Kill()
	killed := time.Now()
	h.stripe.SetDelay(func(*http.Request) time.Duration { return 0 })

	rc := h.opt.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	store := flows.NewStore(rc, h.insp)
	b := h.startServer(t, "b", nil)
	for _, id := range ids {
		escrowtest.Eventually(t, "flow "+id+" completed", 150*time.Second, func() bool {
			v, err := store.Status(ctx, id)
			return err == nil && v.State == flows.StateCompleted
		})
	}
	t.Logf("every flow completed %.1f s after the kill", time.Since(killed).Seconds())
	escrowtest.NoLeases(t, h.opt)

	captured, _, _, _ := h.stripe.Effects()
	for _, pi := range pis {
		if captured[pi] != 1 {
			t.Errorf("capture %s: made %d times, want 1", pi, captured[pi])
		}
	}
	got, refused := h.hooks.Deliveries()
	if len(refused) > 0 {
		t.Errorf("refused deliveries: %v", refused)
	}
	if len(got) != n {
		t.Errorf("webhooks: got %d webhook-ids, want %d: %v", len(got), n, got)
	}
	for id, c := range got {
		if c != 1 {
			t.Errorf("webhook %s delivered %d times, want 1 (its job ran more than once)", id, c)
		}
	}
	seen := map[string]int{}
	for _, l := range readAudit(t, filepath.Join(h.dir, "audit.jsonl")) {
		seen[l.EventID]++
	}
	for _, aud := range audits {
		if seen[aud] != 1 {
			t.Errorf("audit %s: written %d times, want 1", aud, seen[aud])
		}
	}
	b.Signal(syscall.SIGTERM)
	if _, ok := b.Wait(15 * time.Second); !ok {
		t.Errorf("server b did not exit within 15 s of SIGTERM")
	}
	h.scanLogs(t)
}
