package escrowjobs_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
)

const (
	e2eStripeKey   = "sk_test_e2eSecretKeyDoNotLog"
	e2eWebhookKey  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	e2ePartner     = "acme"
	e2eFlakyPI     = "pi_flakyCapture"
	e2eFlakyEvent  = "evt-flaky"
	e2eMailFrom    = "escrow@example.com"
	e2eWaitTimeout = 30 * time.Second
)

// TestServerDoesEveryEffectOnceAgainstRealPeers runs the real server binary
// with its production adapters against mailpit, stripe-mock, a verifying
// webhook receiver and PostgreSQL: each of the nine types reaches its peer
// exactly once, and a peer that fails twice sees three requests with one
// idempotency key / webhook-id.
func TestServerDoesEveryEffectOnceAgainstRealPeers(t *testing.T) {
	redis := peertest.StartRedis(t)
	mail := peertest.StartMailpit(t)
	// Stripe: stripe-mock checks every request's wire format, the kit's
	// stateful fake in front of it holds the PaymentIntents (stripe-mock
	// holds no state) and fails the flaky capture twice.
	stripe := escrowtest.StartStripe(t, escrowtest.StripeConfig{Secret: e2eStripeKey, Validate: peertest.StartStripeMock(t)})
	stripe.AddIntent("pi_capture5", "requires_capture", 5000)
	stripe.AddIntent(e2eFlakyPI, "requires_capture", 7000)
	stripe.AddIntent("pi_refund6", "succeeded", 1000)
	for range 2 {
		stripe.Inject(escrowtest.StripeFault{Method: http.MethodPost, Path: "/v1/payment_intents/" + e2eFlakyPI + "/capture",
			Status: http.StatusInternalServerError, Body: escrowtest.StripeError("api_error", "", "injected failure")})
	}
	rc := escrowtest.StartReceiver(t, e2eWebhookKey)
	rc.FailNext(e2eFlakyEvent, 2)
	db := peertest.Postgres(t)

	dir := t.TempDir()
	registry := filepath.Join(dir, "partners.json")
	reg, _ := json.Marshal(map[string]any{"partners": map[string]any{e2ePartner: map[string]string{"url": rc.URL + "/hooks", "secret": e2eWebhookKey}}})
	if err := os.WriteFile(registry, reg, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"REDIS_URL=" + redis.URL(), "LOG_LEVEL=info", "WORKER_CONCURRENCY=10",
		"SMTP_URL=" + mail.SMTPURL(), "MAIL_FROM=" + e2eMailFrom,
		"STRIPE_SECRET_KEY=" + e2eStripeKey, "STRIPE_API_BASE=" + stripe.URL,
		"WEBHOOK_ENDPOINTS_FILE=" + registry, "WEBHOOK_ALLOW_PRIVATE_NETWORKS=true",
		"AUDIT_DATABASE_URL=" + db, "DEAD_LETTER_PATH=" + filepath.Join(t.TempDir(), "dead-letters-spill.jsonl"),
	}
	srv := peertest.Start(t, peertest.Binary(t, "./cmd/server"), env)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.Output())
		}
	})
	if !srv.WaitOutput(`"worker started"`, 30*time.Second) {
		t.Fatalf("server did not start:\n%s", srv.Output())
	}

	opt, _ := asynq.ParseRedisURI(redis.URL())
	client, insp := tasks.NewClient(opt), tasks.NewInspector(opt)
	defer client.Close()
	defer insp.Close()
	const at = "2026-11-29T10:00:00Z"
	var ids []string
	add := func(task *tasks.Task, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		id, err := client.Enqueue(context.Background(), task)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	add(tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: "esc-1", RecipientEmail: "seller.one@example.com", Amount: 12345, Currency: "USD", RecipientName: "Sam <Seller>"}))
	add(tasks.NewSendRefundEmailTask(payloads.SendRefundEmail{TransactionID: "esc-2", RecipientEmail: "buyer.two@example.com", Amount: 500, Currency: "EUR", Reason: "item damaged"}))
	add(tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{TransactionID: "esc-3", DisputeID: "dsp-3", RecipientEmail: "seller.three@example.com", Reason: "not received"}))
	add(tasks.NewSendPaymentConfirmedEmailTask(payloads.SendPaymentConfirmedEmail{TransactionID: "esc-4", PaymentIntentID: "pi_4", RecipientEmail: "buyer.four@example.com", Amount: 999, Currency: "JPY"}))
	add(tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-5", PaymentIntentID: "pi_capture5"}))
	add(tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-55", PaymentIntentID: e2eFlakyPI}))
	add(tasks.NewStripeRefundPaymentTask(payloads.StripeRefundPayment{TransactionID: "esc-6", PaymentIntentID: "pi_refund6", Amount: 300, RefundID: "rf-6", Reason: payloads.RefundRequestedByCustomer}))
	add(tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{EventID: "evt-7", PartnerID: e2ePartner, TransactionID: "esc-7", PreviousStatus: "funded", Status: "released", OccurredAt: at}))
	add(tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{EventID: e2eFlakyEvent, PartnerID: e2ePartner, TransactionID: "esc-77", PreviousStatus: "funded", Status: "refunded", OccurredAt: at}))
	add(tasks.NewNotifyDisputeResolvedTask(payloads.NotifyDisputeResolved{DisputeID: "dsp-8", TransactionID: "esc-8", Resolution: payloads.ResolutionRefundToBuyer, BuyerEmail: "buyer.eight@example.com", SellerEmail: "seller.eight@example.com", PartnerID: e2ePartner}))
	add(tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "aud-9", Actor: "ops", Action: "escrow.released", TransactionID: "esc-9", OccurredAt: at, Metadata: json.RawMessage(`{"ip":"203.0.113.9"}`)}))

	fanout := []string{
		"send_dispute_email:dispute-dsp-8-resolved-" + payloads.RecipientHash("buyer.eight@example.com"),
		"send_dispute_email:dispute-dsp-8-resolved-" + payloads.RecipientHash("seller.eight@example.com"),
		"webhook_escrow_status_changed:event-dispute-dsp-8-resolved",
	}
	for _, id := range append(ids, fanout...) {
		escrowtest.AwaitState(t, insp, id, "completed", e2eWaitTimeout)
	}

	// E-mail: six messages (four direct, two from the fan-out), one each.
	msgs := mail.WaitMessages(t, 6)
	if len(msgs) != 6 {
		t.Errorf("mailpit holds %d messages, want 6", len(msgs))
	}
	perTo := map[string]int{}
	for _, m := range msgs {
		for _, to := range m.To {
			perTo[to.Address]++
		}
		if !strings.HasSuffix(m.MessageID, "@example.com") || m.From.Address != e2eMailFrom {
			t.Errorf("message %q: got Message-ID %q from %q", m.Subject, m.MessageID, m.From.Address)
		}
	}
	for _, to := range []string{"seller.one@example.com", "buyer.two@example.com", "seller.three@example.com", "buyer.four@example.com", "buyer.eight@example.com", "seller.eight@example.com"} {
		if perTo[to] != 1 {
			t.Errorf("%s got %d e-mails, want 1", to, perTo[to])
		}
	}
	var releaseID string
	for _, m := range msgs {
		if len(m.To) == 1 && m.To[0].Address == "seller.one@example.com" {
			releaseID = m.ID
		}
	}
	full := mail.Message(t, releaseID)
	if !strings.Contains(full.Text, "123.45 USD") || !strings.Contains(full.HTML, "Sam &lt;Seller&gt;") {
		t.Errorf("release e-mail: text %q, html %q; want the amount and the escaped name", full.Text, full.HTML)
	}

	// Stripe: one request per capture and refund; the flaky capture three,
	// all with the same idempotency key.
	for _, pi := range []string{"pi_capture5", "pi_refund6"} {
		if keys := stripe.KeysOf(pi); len(keys) != 1 || keys[0] == "" {
			t.Errorf("%s: got idempotency keys %q, want exactly one request with a key", pi, keys)
		}
	}
	keys := stripe.KeysOf(e2eFlakyPI)
	if len(keys) != 3 || keys[0] != keys[1] || keys[1] != keys[2] || keys[0] != "stripe_capture_payment:capture-"+e2eFlakyPI {
		t.Errorf("flaky capture: got keys %q, want three requests with key stripe_capture_payment:capture-%s", keys, e2eFlakyPI)
	}
	if got := stripe.Intent("pi_capture5"); got.Status != "succeeded" || got.Received != 5000 {
		t.Errorf("pi_capture5 after the run: got status %q, received %d; want succeeded, 5000", got.Status, got.Received)
	}
	if refunds := stripe.Refunds(); len(refunds) != 1 || refunds[0].PaymentIntent != "pi_refund6" || refunds[0].Amount != 300 {
		t.Errorf("refunds after the run: got %+v, want one of 300 on pi_refund6", refunds)
	}

	// Webhooks: verified by the receiver; the flaky one three times with one webhook-id.
	for id, want := range map[string]int{"evt-7": 1, "dispute-dsp-8-resolved": 1, e2eFlakyEvent: 3} {
		if got := rc.Count(id); got != want {
			t.Errorf("webhook %s: got %d verified deliveries, want %d", id, got, want)
		}
	}
	if _, refused := rc.Deliveries(); len(refused) != 0 {
		t.Errorf("the receiver refused %d requests, want 0: %v", len(refused), refused)
	}

	// Audit: one row in PostgreSQL.
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE event_id = 'aud-9' AND metadata->>'ip' = '203.0.113.9'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("audit_events: got %d rows (%v), want 1", n, err)
	}

	secrets := []string{e2eStripeKey, e2eWebhookKey, strings.TrimPrefix(e2eWebhookKey, "whsec_")}
	assertCleanLogs(t, srv.Output(), append(secrets, customerEmails...))
}

// customerEmails are the addresses the payloads of this test carry.
var customerEmails = []string{
	"seller.one@example.com", "buyer.two@example.com", "seller.three@example.com", "buyer.four@example.com",
	"buyer.eight@example.com", "seller.eight@example.com",
}

// assertCleanLogs fails when a log holds any of the secrets or customer
// e-mail addresses (in the clear, in base64, or with the local part only).
func assertCleanLogs(t *testing.T, logs string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
			if strings.Contains(logs, form) {
				t.Errorf("the log holds %q", s)
			}
		}
		if local, _, ok := strings.Cut(s, "@"); ok && strings.Contains(logs, local+"@") {
			t.Errorf("the log holds the address %q", s)
		}
	}
}
