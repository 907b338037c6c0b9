package payments_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeStripe is a small stateful Stripe API on httptest: PaymentIntents
// that can be retrieved and captured once, refunds that can be created and
// listed by payment_intent, and an Idempotency-Key store that replays the
// first answer to a key (and refuses the key with other parameters) until
// wipeKeys forgets every key, as Stripe does after 24 hours.
type fakeStripe struct {
	secret string
	srv    *httptest.Server

	mu       sync.Mutex
	intents  map[string]*fakeIntent
	refunds  []*fakeRefund // oldest first
	keys     map[string]keyedAnswer
	posts    []fakePost
	faults   []fault
	captures int // captures performed
	created  int // refunds created
}

type fakeIntent struct {
	ID, Status                   string
	Amount, Capturable, Received int64
	Refunded                     int64
	Charge                       string
	Metadata                     map[string]string
}

type fakeRefund struct {
	ID, PaymentIntent, Reason, Status string
	Amount                            int64
	Metadata                          map[string]string
}

// fakePost is one POST the fake received.
type fakePost struct {
	Path, IdempotencyKey string
	Form                 map[string]string
}

type keyedAnswer struct {
	request string // path and form: a key is bound to these
	status  int
	body    []byte
}

// fault is an answer given instead of the normal one to the next request
// matching method and path. With drop, the request is carried out and
// then the connection is closed without an answer (the answer is lost).
type fault struct {
	method, path string
	status       int
	header       map[string]string
	body         string
	drop         bool
}

func startFakeStripe(t *testing.T, secret string) *fakeStripe {
	t.Helper()
	f := &fakeStripe{secret: secret, intents: map[string]*fakeIntent{}, keys: map[string]keyedAnswer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/payment_intents/{id}", f.getIntent)
	mux.HandleFunc("POST /v1/payment_intents/{id}/capture", f.capture)
	mux.HandleFunc("GET /v1/refunds", f.listRefunds)
	mux.HandleFunc("POST /v1/refunds", f.createRefund)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.serve(t, mux, w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeStripe) serve(t *testing.T, mux http.Handler, w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.secret {
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "", "Invalid API Key provided")
		return
	}
	if err := r.ParseForm(); err != nil {
		t.Errorf("fake stripe: parse form: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.Header.Get("Idempotency-Key")
	if r.Method == http.MethodPost {
		f.posts = append(f.posts, fakePost{Path: r.URL.Path, IdempotencyKey: key, Form: flatten(r.PostForm)})
	}
	var drop bool
	for i, ft := range f.faults {
		if ft.method == r.Method && ft.path == r.URL.Path {
			f.faults = append(f.faults[:i], f.faults[i+1:]...)
			if !ft.drop {
				w.Header().Set("Content-Type", "application/json")
				for k, v := range ft.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(ft.status)
				_, _ = w.Write([]byte(ft.body))
				return
			}
			drop = true
			break
		}
	}
	rec := httptest.NewRecorder()
	request := r.URL.Path + "?" + r.PostForm.Encode()
	if prev, ok := f.keys[key]; ok && r.Method == http.MethodPost && key != "" {
		if prev.request != request {
			writeError(rec, http.StatusBadRequest, "idempotency_error", "",
				"Keys for idempotent requests can only be used with the same parameters they were first used with.")
		} else {
			rec.Header().Set("Idempotent-Replayed", "true")
			rec.WriteHeader(prev.status)
			_, _ = rec.Write(prev.body)
		}
	} else {
		mux.ServeHTTP(rec, r) // the handlers run with f.mu held
		if r.Method == http.MethodPost && key != "" {
			f.keys[key] = keyedAnswer{request: request, status: rec.Code, body: rec.Body.Bytes()}
		}
	}
	if drop {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("fake stripe: hijack: %v", err)
			return
		}
		conn.Close()
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (f *fakeStripe) getIntent(w http.ResponseWriter, r *http.Request) {
	pi, ok := f.intents[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such payment_intent: '"+r.PathValue("id")+"'")
		return
	}
	writeJSON(w, intentJSON(pi))
}

func (f *fakeStripe) capture(w http.ResponseWriter, r *http.Request) {
	pi, ok := f.intents[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such payment_intent")
		return
	}
	if pi.Status != "requires_capture" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state",
			"This PaymentIntent could not be captured because it has a status of "+pi.Status+".")
		return
	}
	amount := pi.Capturable
	if v := r.PostForm.Get("amount_to_capture"); v != "" {
		amount, _ = strconv.ParseInt(v, 10, 64)
	}
	if amount <= 0 || amount > pi.Capturable {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "amount_too_large", "amount_to_capture is larger than amount_capturable")
		return
	}
	f.captures++
	pi.Status, pi.Received, pi.Capturable = "succeeded", amount, 0
	pi.Charge = fmt.Sprintf("ch_fake%d", f.captures)
	for k, v := range metadata(r.PostForm) {
		pi.Metadata[k] = v
	}
	writeJSON(w, intentJSON(pi))
}

func (f *fakeStripe) listRefunds(w http.ResponseWriter, r *http.Request) {
	limit, err := strconv.Atoi(r.Form.Get("limit"))
	if err != nil || limit < 1 || limit > 100 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", "limit must be 1..100")
		return
	}
	pi := r.Form.Get("payment_intent")
	data := []any{}
	for i := len(f.refunds) - 1; i >= 0; i-- { // newest first
		if ref := f.refunds[i]; pi == "" || ref.PaymentIntent == pi {
			data = append(data, refundJSON(ref))
		}
	}
	writeJSON(w, map[string]any{"object": "list", "url": "/v1/refunds", "has_more": false, "data": data})
}

func (f *fakeStripe) createRefund(w http.ResponseWriter, r *http.Request) {
	pi, ok := f.intents[r.PostForm.Get("payment_intent")]
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "resource_missing", "No such payment_intent")
		return
	}
	if pi.Status != "succeeded" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state", "This PaymentIntent has no charge to refund.")
		return
	}
	remaining := pi.Received - pi.Refunded
	amount := remaining
	if v := r.PostForm.Get("amount"); v != "" {
		amount, _ = strconv.ParseInt(v, 10, 64)
	}
	if amount <= 0 || amount > remaining {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "charge_already_refunded", "Refund amount is greater than what remains.")
		return
	}
	f.created++
	pi.Refunded += amount
	ref := &fakeRefund{
		ID: fmt.Sprintf("re_fake%d", f.created), PaymentIntent: pi.ID, Reason: r.PostForm.Get("reason"),
		Status: "succeeded", Amount: amount, Metadata: metadata(r.PostForm),
	}
	f.refunds = append(f.refunds, ref)
	writeJSON(w, refundJSON(ref))
}

// addIntent adds a PaymentIntent of amount in status; a succeeded one has
// been captured in full already.
func (f *fakeStripe) addIntent(id, status string, amount int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pi := &fakeIntent{ID: id, Status: status, Amount: amount, Metadata: map[string]string{}}
	switch status {
	case "requires_capture":
		pi.Capturable = amount
	case "succeeded":
		pi.Received, pi.Charge = amount, "ch_before_"+id
	}
	f.intents[id] = pi
}

func (f *fakeStripe) addRefund(ref fakeRefund) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refunds = append(f.refunds, &ref)
}

func (f *fakeStripe) inject(ft fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, ft)
}

// wipeKeys forgets every Idempotency-Key, as Stripe does after 24 hours.
func (f *fakeStripe) wipeKeys() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = map[string]keyedAnswer{}
}

func (f *fakeStripe) intent(id string) fakeIntent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.intents[id]
}

func (f *fakeStripe) counts() (captures, refunds int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.captures, f.created
}

func (f *fakeStripe) refundList() []fakeRefund {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRefund
	for _, r := range f.refunds {
		out = append(out, *r)
	}
	return out
}

func (f *fakeStripe) postsSeen() []fakePost {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakePost(nil), f.posts...)
}

func intentJSON(pi *fakeIntent) map[string]any {
	var charge any
	if pi.Charge != "" {
		charge = pi.Charge
	}
	return map[string]any{
		"id": pi.ID, "object": "payment_intent", "status": pi.Status, "amount": pi.Amount,
		"amount_capturable": pi.Capturable, "amount_received": pi.Received, "currency": "usd",
		"capture_method": "manual", "latest_charge": charge, "metadata": pi.Metadata,
		"client_secret": pi.ID + "_secret_doNotLeak",
	}
}

func refundJSON(r *fakeRefund) map[string]any {
	var reason any
	if r.Reason != "" {
		reason = r.Reason
	}
	return map[string]any{
		"id": r.ID, "object": "refund", "amount": r.Amount, "currency": "usd", "payment_intent": r.PaymentIntent,
		"reason": reason, "status": r.Status, "metadata": r.Metadata,
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_fake")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_fake")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(errorBody(typ, code, msg)))
}

func errorBody(typ, code, msg string) string {
	e := map[string]string{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return string(b)
}

// metadata is the metadata[k]=v fields of a form.
func metadata(form map[string][]string) map[string]string {
	m := map[string]string{}
	for k, v := range form {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(v) > 0 {
			m[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	return m
}

func flatten(form map[string][]string) map[string]string {
	m := map[string]string{}
	for k, v := range form {
		m[k] = strings.Join(v, ",")
	}
	return m
}
