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

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// api is the service on a fresh database and Redis (no worker: the flows
// wait in the outbox), behind httptest.
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
	store := flows.NewStore(peertest.RedisClient(t, peertest.Redis(t)), nil)
	svc := NewService(db, store, slog.New(slog.NewJSONHandler(a.log, nil)))
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
	create := func(id, pi string) {
		t.Helper()
		body := strings.Replace(strings.Replace(goodBody, id64, id, 1), "pi_3MtwBwLkdIwHu7ix28a3tqPa", pi, 1)
		if code, out := a.call(t, "POST", "/escrows", body); code != http.StatusCreated || out["status"] != "funded" {
			t.Fatalf("create %s: got %d %v, want 201 funded", id, code, out)
		}
	}
	create(id64, "pi_3MtwBwLkdIwHu7ix28a3tqPa")
	// Each step runs in order on the escrow it names. No worker runs, so
	// the money of a transition stays moving (releasing, …).
	steps := []struct {
		name, path, body string
		wantCode         int
		wantStatus       string   // the escrow's status in the answer (or the 409's "status")
		wantFields       []string // for 400
	}{
		{"create again", "/escrows", goodBody, 409, "", nil},
		{"resolve before a dispute", "/escrows/" + id64 + "/resolve", `{"resolution":"split","sellerAmount":5000}`, 409, "funded", nil},
		{"dispute without an id", "/escrows/" + id64 + "/dispute", `{"reason":"not delivered"}`, 400, "", []string{"disputeId"}},
		{"dispute with a bad id and no reason", "/escrows/" + id64 + "/dispute", `{"disputeId":"d 1"}`, 400, "", []string{"disputeId", "reason"}},
		{"dispute", "/escrows/" + id64 + "/dispute", `{"disputeId":"dsp-1","reason":"Item not delivered."}`, 200, "disputed", nil},
		{"dispute twice", "/escrows/" + id64 + "/dispute", `{"disputeId":"dsp-2","reason":"again"}`, 409, "disputed", nil},
		{"release a disputed escrow", "/escrows/" + id64 + "/release", ``, 409, "disputed", nil},
		{"refund a disputed escrow", "/escrows/" + id64 + "/refund", `{}`, 409, "disputed", nil},
		{"resolve with an unknown resolution", "/escrows/" + id64 + "/resolve", `{"resolution":"coin_flip"}`, 400, "", []string{"resolution"}},
		{"split without sellerAmount", "/escrows/" + id64 + "/resolve", `{"resolution":"split"}`, 400, "", []string{"sellerAmount"}},
		{"split of nothing", "/escrows/" + id64 + "/resolve", `{"resolution":"split","sellerAmount":0}`, 400, "", []string{"sellerAmount"}},
		{"split of everything", "/escrows/" + id64 + "/resolve", `{"resolution":"split","sellerAmount":12500}`, 400, "", []string{"sellerAmount"}},
		{"split of a negative amount", "/escrows/" + id64 + "/resolve", `{"resolution":"split","sellerAmount":-1}`, 400, "", []string{"sellerAmount"}},
		{"sellerAmount without a split", "/escrows/" + id64 + "/resolve", `{"resolution":"release_to_seller","sellerAmount":100}`, 400, "", []string{"sellerAmount"}},
		{"resolve", "/escrows/" + id64 + "/resolve", `{"resolution":"split","sellerAmount":5000}`, 200, "resolving", nil},
		{"resolve twice", "/escrows/" + id64 + "/resolve", `{"resolution":"split","sellerAmount":5000}`, 409, "resolving", nil},
		{"release unknown escrow", "/escrows/esc-nope/release", ``, 404, "", nil},
		{"refund with a reason Stripe does not know", "/escrows/esc-r/refund", `{"reason":"changed my mind"}`, 400, "", []string{"reason"}},
		{"refund", "/escrows/esc-r/refund", `{"reason":"requested_by_customer"}`, 200, "refunding", nil},
		{"release while refunding", "/escrows/esc-r/release", `{}`, 409, "refunding", nil},
		{"release with a body field", "/escrows/esc-rel/release", `{"force":true}`, 400, "", []string{"force"}},
		{"release", "/escrows/esc-rel/release", ``, 200, "releasing", nil},
		{"release while releasing", "/escrows/esc-rel/release", ``, 409, "releasing", nil},
		{"refund while releasing", "/escrows/esc-rel/refund", `{}`, 409, "releasing", nil},
		{"dispute while releasing", "/escrows/esc-rel/dispute", `{"disputeId":"dsp-3","reason":"late"}`, 409, "releasing", nil},
	}
	create("esc-r", "pi_r1")
	create("esc-rel", "pi_rel1")
	for _, s := range steps {
		code, out := a.call(t, "POST", s.path, s.body)
		gotStatus, _ := out["status"].(string)
		if code != s.wantCode || gotStatus != s.wantStatus || !slices.Equal(fieldNames(out), s.wantFields) {
			t.Errorf("%s: got %d status %q fields %q (%v), want %d status %q fields %q",
				s.name, code, gotStatus, fieldNames(out), out, s.wantCode, s.wantStatus, s.wantFields)
		}
	}
	code, out := a.call(t, "GET", "/escrows/"+id64, "")
	if code != 200 || out["status"] != "resolving" || out["disputeId"] != "dsp-1" || out["resolution"] != "split" || out["sellerAmount"] != 5000.0 || out["sellerEmail"] != "jane@bücher.de" {
		t.Errorf("GET: got %d %v, want 200 resolving with disputeId dsp-1, resolution split, sellerAmount 5000", code, out)
	}
	if fl, ok := out["flows"].([]any); !ok || len(fl) != 0 {
		t.Errorf("GET flows: got %v, want [] (no relay runs, so no flow has started)", out["flows"])
	}

	// Only the allowed transitions added a flow, in commit order, each one
	// outbox row (its start job).
	want := []string{
		"escrowjobs_flow_start:fund:" + id64, "escrowjobs_flow_start:fund:esc-r", "escrowjobs_flow_start:fund:esc-rel",
		"escrowjobs_flow_start:dispute:" + id64, "escrowjobs_flow_start:resolve:" + id64,
		"escrowjobs_flow_start:refund:esc-r", "escrowjobs_flow_start:release:esc-rel",
	}
	if got := a.outboxJobs(t); !slices.Equal(got, want) {
		t.Errorf("outbox: got %q, want %q", got, want)
	}
	if log := a.log.String(); strings.Contains(log, "bücher") || strings.Contains(log, "jane doe") {
		t.Errorf("the log shows a customer address:\n%s", log)
	}
}

func TestPaymentIntentOfAnotherEscrowIs409NamingTheField(t *testing.T) {
	a := newAPI(t)
	if code, out := a.call(t, "POST", "/escrows", goodBody); code != http.StatusCreated {
		t.Fatalf("create: got %d %v, want 201", code, out)
	}
	other := strings.Replace(goodBody, id64, "esc-other", 1)
	code, out := a.call(t, "POST", "/escrows", other)
	if got := fieldNames(out); code != http.StatusConflict || !slices.Equal(got, []string{"paymentIntentId"}) {
		t.Errorf("second escrow with the payment intent: got %d fields %q (%v), want 409 naming paymentIntentId", code, got, out)
	}
	if code, _ := a.call(t, "GET", "/escrows/esc-other", ""); code != http.StatusNotFound {
		t.Errorf("GET the refused escrow: got %d, want 404", code)
	}
	if got := a.outboxJobs(t); !slices.Equal(got, []string{"escrowjobs_flow_start:fund:" + id64}) {
		t.Errorf("outbox: got %q, want only the first escrow's fund flow", got)
	}
}

func TestMigrateUpgradesAndRepeats(t *testing.T) {
	db := peertest.PostgresPool(t)
	ctx := context.Background()
	// The table as the example created it before seller_amount and the
	// payment intent index.
	if _, err := db.Exec(ctx, `CREATE TABLE escrows (
		id text PRIMARY KEY, status text NOT NULL, buyer_email text NOT NULL, seller_email text NOT NULL,
		amount bigint NOT NULL, currency text NOT NULL, payment_intent_id text NOT NULL,
		partner_id text NOT NULL DEFAULT '', dispute_id text NOT NULL DEFAULT '', resolution text NOT NULL DEFAULT '',
		created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO escrows (id, status, buyer_email, seller_email, amount, currency, payment_intent_id)
		VALUES ('esc-old', 'funded', 'b@example.com', 's@example.com', 100, 'EUR', 'pi_old')`); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := Migrate(ctx, db); err != nil {
			t.Fatalf("Migrate %d: %v", i+1, err)
		}
	}
	e, err := load(ctx, db, "esc-old", false)
	if err != nil || e.SellerAmount != 0 || e.PaymentIntentID != "pi_old" {
		t.Errorf("old escrow after the upgrade: got %+v, %v; want it kept, sellerAmount 0", e, err)
	}
	var unique bool
	if err := db.QueryRow(ctx, `SELECT indisunique FROM pg_index WHERE indexrelid = $1::regclass`, paymentIntentIndex).Scan(&unique); err != nil || !unique {
		t.Errorf("index %s: got unique %v, %v; want a unique index", paymentIntentIndex, unique, err)
	}
}
