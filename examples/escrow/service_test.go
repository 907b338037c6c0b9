package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// api is the service on a fresh database, behind httptest.
type api struct {
	db  *pgxpool.Pool
	srv *httptest.Server
	log *peertest.Buffer
}

func newAPI(t *testing.T) *api {
	t.Helper()
	db := peertest.PostgresPool(t)
	if err := Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	a := &api{db: db, log: &peertest.Buffer{}}
	svc := NewService(db, slog.New(slog.NewJSONHandler(a.log, nil)))
	svc.now = func() time.Time { return time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC) }
	a.srv = httptest.NewServer(svc.Handler())
	t.Cleanup(a.srv.Close)
	return a
}

// call sends body (raw JSON) and returns the status and decoded answer.
func (a *api) call(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %s", method, path, b)
	}
	return resp.StatusCode, out
}

// fieldNames are the "field" values of a 400 answer, in order.
func fieldNames(out map[string]any) []string {
	var names []string
	fields, _ := out["fields"].([]any)
	for _, f := range fields {
		m, _ := f.(map[string]any)
		name, _ := m["field"].(string)
		names = append(names, name)
	}
	return names
}

// outboxJobs is the job IDs waiting in the outbox, oldest first.
func (a *api) outboxJobs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, r := range listOutbox(t, a.db) {
		ids = append(ids, r.jobID)
	}
	return ids
}

var (
	id64     = "esc-" + strings.Repeat("0123456789", 6) // 64 characters, the identifier limit
	goodBody = `{"id":"` + id64 + `","buyerEmail":"\"jane doe\"@example.com","sellerEmail":"jane@bücher.de","amount":12500,"currency":"EUR","paymentIntentId":"pi_3MtwBwLkdIwHu7ix28a3tqPa","partnerId":"acme"}`
)

func TestCreateRejectsBadInputNamingTheField(t *testing.T) {
	a := newAPI(t)
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"not JSON", `{"id":`, []string{"body"}},
		{"not an object", `[1,2]`, []string{"body"}},
		{"trailing data", `{} {}`, []string{"body"}},
		{"unknown field", `{"identifier":"esc-1"}`, []string{"identifier"}},
		{"unknown field shaped like an address", `{"jane@example.com":1}`, []string{"j***@example.com"}},
		{"amount as a string", `{"amount":"12500"}`, []string{"amount"}},
		{"everything missing", `{}`, []string{"id", "paymentIntentId", "buyerEmail", "amount", "currency", "sellerEmail"}},
		{"id of 65 characters", strings.Replace(goodBody, id64, id64+"x", 1), []string{"id"}},
		{"id with a slash", strings.Replace(goodBody, id64, "esc/1", 1), []string{"id"}},
		{"buyer address", strings.Replace(goodBody, `\"jane doe\"@example.com`, "jane", 1), []string{"buyerEmail"}},
		{"seller address with a line break", strings.Replace(goodBody, "jane@bücher.de", `jane@example.com\r\nBcc: x@example.com`, 1), []string{"sellerEmail"}},
		{"currency", strings.Replace(goodBody, `"EUR"`, `"EURO"`, 1), []string{"currency"}},
		{"zero amount", strings.Replace(goodBody, `12500`, `0`, 1), []string{"amount"}},
		{"payment intent", strings.Replace(goodBody, `pi_3MtwBwLkdIwHu7ix28a3tqPa`, `ch_123`, 1), []string{"paymentIntentId"}},
		{"partner", strings.Replace(goodBody, `"acme"`, `"acme corp"`, 1), []string{"partnerId"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := a.call(t, "POST", "/escrows", tc.body)
			if got := fieldNames(out); code != http.StatusBadRequest || !slices.Equal(got, tc.want) {
				t.Errorf("got %d fields %q (%v), want 400 fields %q", code, got, out, tc.want)
			}
		})
	}
	if got := a.outboxJobs(t); len(got) != 0 {
		t.Errorf("outbox after bad requests: got %q, want nothing", got)
	}
	if strings.Contains(a.log.String(), "jane@example.com") {
		t.Errorf("the log shows a customer address:\n%s", a.log.String())
	}
}

func TestTransitionsAllowedByStatusElse409(t *testing.T) {
	a := newAPI(t)
	create := func(id string) {
		t.Helper()
		body := strings.Replace(goodBody, id64, id, 1)
		if code, out := a.call(t, "POST", "/escrows", body); code != http.StatusCreated || out["status"] != "funded" {
			t.Fatalf("create %s: got %d %v, want 201 funded", id, code, out)
		}
	}
	create(id64)
	// Each step runs in order on the escrow it names.
	steps := []struct {
		name, path, body string
		wantCode         int
		wantStatus       string   // the escrow's status in the answer (or the 409's "status")
		wantFields       []string // for 400
	}{
		{"create again", "/escrows", goodBody, 409, "", nil},
		{"resolve before a dispute", "/escrows/" + id64 + "/resolve", `{"resolution":"split"}`, 409, "funded", nil},
		{"dispute without an id", "/escrows/" + id64 + "/dispute", `{"reason":"not delivered"}`, 400, "", []string{"disputeId"}},
		{"dispute with a bad id and no reason", "/escrows/" + id64 + "/dispute", `{"disputeId":"d 1"}`, 400, "", []string{"disputeId", "reason"}},
		{"dispute", "/escrows/" + id64 + "/dispute", `{"disputeId":"dsp-1","reason":"Item not delivered."}`, 200, "disputed", nil},
		{"dispute twice", "/escrows/" + id64 + "/dispute", `{"disputeId":"dsp-2","reason":"again"}`, 409, "disputed", nil},
		{"release a disputed escrow", "/escrows/" + id64 + "/release", ``, 409, "disputed", nil},
		{"refund a disputed escrow", "/escrows/" + id64 + "/refund", `{}`, 409, "disputed", nil},
		{"resolve with an unknown resolution", "/escrows/" + id64 + "/resolve", `{"resolution":"coin_flip"}`, 400, "", []string{"resolution"}},
		{"resolve", "/escrows/" + id64 + "/resolve", `{"resolution":"split"}`, 200, "resolved", nil},
		{"resolve twice", "/escrows/" + id64 + "/resolve", `{"resolution":"split"}`, 409, "resolved", nil},
		{"release unknown escrow", "/escrows/esc-nope/release", ``, 404, "", nil},
		{"refund with a reason Stripe does not know", "/escrows/esc-r/refund", `{"reason":"changed my mind"}`, 400, "", []string{"reason"}},
		{"refund", "/escrows/esc-r/refund", `{"reason":"requested_by_customer"}`, 200, "refunded", nil},
		{"release a refunded escrow", "/escrows/esc-r/release", `{}`, 409, "refunded", nil},
		{"release with a body field", "/escrows/esc-rel/release", `{"force":true}`, 400, "", []string{"force"}},
		{"release", "/escrows/esc-rel/release", ``, 200, "released", nil},
		{"refund a released escrow", "/escrows/esc-rel/refund", `{}`, 409, "released", nil},
		{"dispute a released escrow", "/escrows/esc-rel/dispute", `{"disputeId":"dsp-3","reason":"late"}`, 409, "released", nil},
	}
	create("esc-r")
	create("esc-rel")
	for _, s := range steps {
		code, out := a.call(t, "POST", s.path, s.body)
		gotStatus, _ := out["status"].(string)
		if code != s.wantCode || gotStatus != s.wantStatus || !slices.Equal(fieldNames(out), s.wantFields) {
			t.Errorf("%s: got %d status %q fields %q (%v), want %d status %q fields %q",
				s.name, code, gotStatus, fieldNames(out), out, s.wantCode, s.wantStatus, s.wantFields)
		}
	}
	code, out := a.call(t, "GET", "/escrows/"+id64, "")
	if code != 200 || out["status"] != "resolved" || out["disputeId"] != "dsp-1" || out["resolution"] != "split" || out["sellerEmail"] != "jane@bücher.de" {
		t.Errorf("GET: got %d %v, want 200 resolved with disputeId dsp-1, resolution split", code, out)
	}

	// Only the allowed transitions added jobs, in commit order.
	create1 := []string{"send_payment_confirmed_email:payment-pi_3MtwBwLkdIwHu7ix28a3tqPa-", "audit_log_created:audit-"}
	want := [][]string{
		create1, create1, create1, // three creates; the same payment intent, so the same e-mail job ID (deduplicated)
		{"send_dispute_email:dispute-dsp-1-", "send_dispute_email:dispute-dsp-1-", "webhook_escrow_status_changed:event-", "audit_log_created:audit-"},
		{"notify_dispute_resolved:dispute-dsp-1-resolved", "audit_log_created:audit-"},
		{"stripe_refund_payment:refund-pi_3MtwBwLkdIwHu7ix28a3tqPa-full", "send_refund_email:escrow-esc-r-refund-", "webhook_escrow_status_changed:event-", "audit_log_created:audit-"},
		{"stripe_capture_payment:capture-pi_3MtwBwLkdIwHu7ix28a3tqPa", "send_release_email:escrow-esc-rel-release-", "webhook_escrow_status_changed:event-", "audit_log_created:audit-"},
	}
	var prefixes []string
	for i, w := range want {
		if i == 1 || i == 2 {
			w = w[1:] // the payment-confirmed e-mail of the same payment intent is already waiting
		}
		prefixes = append(prefixes, w...)
	}
	got := a.outboxJobs(t)
	if len(got) != len(prefixes) {
		t.Fatalf("outbox: got %d jobs %q, want %d", len(got), got, len(prefixes))
	}
	for i, p := range prefixes {
		if !strings.HasPrefix(got[i], p) {
			t.Errorf("outbox job %d: got %s, want prefix %s", i, got[i], p)
		}
	}
	if log := a.log.String(); strings.Contains(log, "bücher") || strings.Contains(log, "jane doe") {
		t.Errorf("the log shows a customer address:\n%s", log)
	}
}
