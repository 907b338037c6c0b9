package escrowtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Stripe is a stateful Stripe API on loopback: PaymentIntents that can be
// retrieved, captured once or canceled once (POST
// /v1/payment_intents/{id}/cancel, which releases the hold), whose
// authorization can be made to expire (ExpireAuthorization), refunds that can be created and listed by
// payment_intent, and an Idempotency-Key store that replays the first
// answer to a key (and refuses the key with other parameters) until
// ForgetKeys, as Stripe does after 24 hours.
//
// Faults: Inject answers the next matching request with a given error, or
// carries it out and drops the connection (the answer is lost); SetDelay
// holds an answer back after the effect was applied, so a worker can die
// between the effect and the answer.
//
// With StripeConfig.Validate set to a stripe-mock URL, every request is
// first sent to stripe-mock, which checks the wire format (stripe-mock
// holds no state and ignores idempotency keys); a request it refuses gets
// its answer, the others get the stateful answer.
type Stripe struct {
	// URL is the API base (STRIPE_API_BASE).
	URL string

	secret   string
	validate string
	srv      *httptest.Server
	inflight atomic.Int64
	down     atomic.Int64 // the status every request gets while not 0 (SetDown)

	mu       sync.Mutex
	intents  map[string]*StripeIntent
	refunds  []*StripeRefund // oldest first
	keys     map[string]keyedAnswer
	posts    []StripePost
	faults   []StripeFault
	delay    func(*http.Request) time.Duration
	captures int
	cancels  int
	created  int
	replays  int
	captured map[string]int // payment intent → captures applied
	refunded map[string]int // payment intent → refunds applied
}

// StripeIntent is a PaymentIntent the fake holds: requires_capture
// (authorised, Capturable held), succeeded (Received captured) or canceled
// (the hold released, by a cancel or because the authorization expired).
type StripeIntent struct {
	ID, Status                   string
	Amount, Capturable, Received int64
	Refunded                     int64
	Charge                       string
	Metadata                     map[string]string
	// CancellationReason is Stripe's: requested_by_customer, …, or
	// automatic when the authorization expired.
	CancellationReason string
	// CapturedAt and CanceledAt are when the fake applied the capture or
	// the cancel (zero before).
	CapturedAt, CanceledAt time.Time
}

// StripeRefund is a refund the fake holds.
type StripeRefund struct {
	ID, PaymentIntent, Reason, Status string
	Amount                            int64
	Metadata                          map[string]string
}

// StripePost is one POST the fake received, replays and faults included.
type StripePost struct {
	Path, IdempotencyKey string
	// PaymentIntent is the intent captured or refunded.
	PaymentIntent string
	Form          map[string]string
}

// StripeFault is an answer given instead of the normal one to the next
// request matching Method and Path. With Drop, the request is carried out
// and then the connection is closed without an answer.
type StripeFault struct {
	Method, Path string
	Status       int
	Header       map[string]string
	Body         string
	Drop         bool
}

type keyedAnswer struct {
	request string // path and form: a key is bound to these
	status  int
	body    []byte
}

// StripeConfig configures StartStripe.
type StripeConfig struct {
	// Secret is the only API key accepted (Authorization: Bearer …).
	Secret string
	// Validate, when set, is a stripe-mock URL that checks every request's
	// wire format first.
	Validate string
}

// StartStripe starts the fake; it stops at cleanup.
func StartStripe(t testing.TB, cfg StripeConfig) *Stripe {
	t.Helper()
	s := &Stripe{
		secret: cfg.Secret, validate: strings.TrimSuffix(cfg.Validate, "/"),
		intents: map[string]*StripeIntent{}, keys: map[string]keyedAnswer{},
		captured: map[string]int{}, refunded: map[string]int{},
		delay: func(*http.Request) time.Duration { return 0 },
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/payment_intents/{id}", s.getIntent)
	mux.HandleFunc("POST /v1/payment_intents/{id}/capture", s.capture)
	mux.HandleFunc("POST /v1/payment_intents/{id}/cancel", s.cancel)
	mux.HandleFunc("GET /v1/refunds", s.listRefunds)
	mux.HandleFunc("POST /v1/refunds", s.createRefund)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		s.serve(t, mux, w, r)
	}))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

func (s *Stripe) serve(t testing.TB, mux http.Handler, w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.secret {
		writeStripeError(w, http.StatusUnauthorized, "invalid_request_error", "", "Invalid API Key provided")
		return
	}
	if code := int(s.down.Load()); code != 0 {
		writeStripeError(w, code, "api_error", "", "Stripe is unavailable (SetDown)")
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseForm(); err != nil {
		writeStripeError(w, http.StatusBadRequest, "invalid_request_error", "", "bad form")
		return
	}
	if s.validate != "" {
		if code, answer, ok := s.check(t, r, body); !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write(answer)
			return
		}
	}
	s.mu.Lock()
	key := r.Header.Get("Idempotency-Key")
	if r.Method == http.MethodPost {
		pi := r.PostForm.Get("payment_intent") // a refund
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/payment_intents/"); ok {
			pi, _, _ = strings.Cut(rest, "/") // a capture or a cancel
		}
		s.posts = append(s.posts, StripePost{Path: r.URL.Path, IdempotencyKey: key, PaymentIntent: pi, Form: flatten(r.PostForm)})
	}
	var drop bool
	for i, ft := range s.faults {
		if ft.Method == r.Method && ft.Path == r.URL.Path {
			s.faults = slices.Delete(s.faults, i, i+1)
			if !ft.Drop {
				s.mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				for k, v := range ft.Header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(ft.Status)
				_, _ = w.Write([]byte(ft.Body))
				return
			}
			drop = true
			break
		}
	}
	rec := httptest.NewRecorder()
	request := r.URL.Path + "?" + r.PostForm.Encode()
	if prev, ok := s.keys[key]; ok && r.Method == http.MethodPost && key != "" {
		if prev.request != request {
			writeStripeError(rec, http.StatusBadRequest, "idempotency_error", "",
				"Keys for idempotent requests can only be used with the same parameters they were first used with.")
		} else {
			s.replays++
			rec.Header().Set("Idempotent-Replayed", "true")
			rec.WriteHeader(prev.status)
			_, _ = rec.Write(prev.body)
		}
	} else {
		mux.ServeHTTP(rec, r) // the handlers run with s.mu held
		if r.Method == http.MethodPost && key != "" {
			s.keys[key] = keyedAnswer{request: request, status: rec.Code, body: rec.Body.Bytes()}
		}
	}
	delay := s.delay(r)
	s.mu.Unlock()
	if delay > 0 { // the effect happened; the answer comes late, or never
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if drop {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("escrowtest stripe: hijack: %v", err)
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

// check sends the request to stripe-mock and reports its answer when it
// refused the request.
func (s *Stripe) check(t testing.TB, r *http.Request, body []byte) (int, []byte, bool) {
	req, err := http.NewRequest(r.Method, s.validate+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		t.Errorf("escrowtest stripe: %v", err)
		return http.StatusInternalServerError, nil, false
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("escrowtest stripe: stripe-mock: %v", err)
		return http.StatusBadGateway, []byte(stripeErrorBody("api_error", "", err.Error())), false
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, answer, resp.StatusCode < 300
}

func (s *Stripe) getIntent(w http.ResponseWriter, r *http.Request) {
	pi, ok := s.intents[r.PathValue("id")]
	if !ok {
		writeStripeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such payment_intent: '"+r.PathValue("id")+"'")
		return
	}
	writeStripeJSON(w, intentJSON(pi))
}

func (s *Stripe) capture(w http.ResponseWriter, r *http.Request) {
	pi, ok := s.intents[r.PathValue("id")]
	if !ok {
		writeStripeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such payment_intent")
		return
	}
	if pi.Status != "requires_capture" {
		writeIntentError(w, pi, "This PaymentIntent could not be captured because it has a status of "+pi.Status+".")
		return
	}
	amount := pi.Capturable
	if v := r.PostForm.Get("amount_to_capture"); v != "" {
		amount, _ = strconv.ParseInt(v, 10, 64)
	}
	if amount <= 0 || amount > pi.Capturable {
		writeStripeError(w, http.StatusBadRequest, "invalid_request_error", "amount_too_large", "amount_to_capture is larger than amount_capturable")
		return
	}
	s.captures++
	s.captured[pi.ID]++
	pi.Status, pi.Received, pi.Capturable = "succeeded", amount, 0
	pi.Charge = fmt.Sprintf("ch_fake%d", s.captures)
	pi.CapturedAt = time.Now()
	for k, v := range metadata(r.PostForm) {
		pi.Metadata[k] = v
	}
	writeStripeJSON(w, intentJSON(pi))
}

// cancelReasons are the cancellation_reason values a caller may give.
var cancelReasons = []string{"", "duplicate", "fraudulent", "requested_by_customer", "abandoned"}

func (s *Stripe) cancel(w http.ResponseWriter, r *http.Request) {
	pi, ok := s.intents[r.PathValue("id")]
	if !ok {
		writeStripeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such payment_intent")
		return
	}
	reason := r.PostForm.Get("cancellation_reason")
	if !slices.Contains(cancelReasons, reason) {
		writeStripeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid_string", "Invalid cancellation_reason: "+reason)
		return
	}
	if pi.Status == "succeeded" || pi.Status == "canceled" {
		writeIntentError(w, pi, "You cannot cancel this PaymentIntent because it has a status of "+pi.Status+".")
		return
	}
	s.cancels++
	pi.Status, pi.Capturable, pi.CancellationReason, pi.CanceledAt = "canceled", 0, reason, time.Now()
	writeStripeJSON(w, intentJSON(pi))
}

func (s *Stripe) listRefunds(w http.ResponseWriter, r *http.Request) {
	limit, err := strconv.Atoi(r.Form.Get("limit"))
	if err != nil || limit < 1 || limit > 100 {
		writeStripeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", "limit must be 1..100")
		return
	}
	pi := r.Form.Get("payment_intent")
	data := []any{}
	for i := len(s.refunds) - 1; i >= 0; i-- { // newest first
		if ref := s.refunds[i]; pi == "" || ref.PaymentIntent == pi {
			data = append(data, refundJSON(ref))
		}
	}
	writeStripeJSON(w, map[string]any{"object": "list", "url": "/v1/refunds", "has_more": false, "data": data})
}

func (s *Stripe) createRefund(w http.ResponseWriter, r *http.Request) {
	pi, ok := s.intents[r.PostForm.Get("payment_intent")]
	if !ok {
		writeStripeError(w, http.StatusBadRequest, "invalid_request_error", "resource_missing", "No such payment_intent")
		return
	}
	if pi.Status != "succeeded" {
		writeStripeError(w, http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state", "This PaymentIntent has no charge to refund.")
		return
	}
	remaining := pi.Received - pi.Refunded
	amount := remaining
	if v := r.PostForm.Get("amount"); v != "" {
		amount, _ = strconv.ParseInt(v, 10, 64)
	}
	if amount <= 0 || amount > remaining {
		writeStripeError(w, http.StatusBadRequest, "invalid_request_error", "charge_already_refunded", "Refund amount is greater than what remains.")
		return
	}
	s.created++
	s.refunded[pi.ID]++
	pi.Refunded += amount
	ref := &StripeRefund{
		ID: fmt.Sprintf("re_fake%d", s.created), PaymentIntent: pi.ID, Reason: r.PostForm.Get("reason"),
		Status: "succeeded", Amount: amount, Metadata: metadata(r.PostForm),
	}
	s.refunds = append(s.refunds, ref)
	writeStripeJSON(w, refundJSON(ref))
}

// AddIntent adds a PaymentIntent of amount in status; a succeeded one has
// been captured in full already.
func (s *Stripe) AddIntent(id, status string, amount int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi := &StripeIntent{ID: id, Status: status, Amount: amount, Metadata: map[string]string{}}
	switch status {
	case "requires_capture":
		pi.Capturable = amount
	case "succeeded":
		pi.Received, pi.Charge = amount, "ch_before_"+id
	}
	s.intents[id] = pi
}

// ExpireAuthorization lets PaymentIntent id's authorization expire, as
// Stripe does after about seven days: the PaymentIntent becomes canceled
// (cancellation_reason automatic), and a capture is refused with
// payment_intent_unexpected_state.
func (s *Stripe) ExpireAuthorization(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi := s.intents[id]
	pi.Status, pi.Capturable, pi.CancellationReason, pi.CanceledAt = "canceled", 0, "automatic", time.Now()
}

// AddRefund adds a refund made before the test (not counted as an effect).
func (s *Stripe) AddRefund(ref StripeRefund) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refunds = append(s.refunds, &ref)
}

// Inject queues a fault for the next request matching its method and path.
func (s *Stripe) Inject(ft StripeFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, ft)
}

// SetDown answers every request with status (an api_error, nothing
// applied, nothing recorded) until SetDown(0), as Stripe does in an outage.
func (s *Stripe) SetDown(status int) { s.down.Store(int64(status)) }

// SetDelay holds each answer back for fn(request) after its effect.
func (s *Stripe) SetDelay(fn func(r *http.Request) time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = fn
}

// ForgetKeys forgets every Idempotency-Key, as Stripe does after 24 hours.
func (s *Stripe) ForgetKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = map[string]keyedAnswer{}
}

// Intent returns a copy of PaymentIntent id.
func (s *Stripe) Intent(id string) StripeIntent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.intents[id]
}

// Counts is the captures and refunds applied in all.
func (s *Stripe) Counts() (captures, refunds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.captures, s.created
}

// Cancels is the cancels applied in all (an expiry is not one).
func (s *Stripe) Cancels() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancels
}

// Effects returns the captures and refunds applied per payment intent, the
// POSTs received and how many of them were answered from the
// Idempotency-Key store.
func (s *Stripe) Effects() (captured, refunded map[string]int, posts, replays int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.captured), clone(s.refunded), len(s.posts), s.replays
}

// Refunds returns the refunds, oldest first.
func (s *Stripe) Refunds() []StripeRefund {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []StripeRefund
	for _, r := range s.refunds {
		out = append(out, *r)
	}
	return out
}

// Posts returns the POSTs received, oldest first.
func (s *Stripe) Posts() []StripePost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.posts)
}

// KeysOf returns the Idempotency-Keys of the POSTs about payment intent
// pi, in the order they arrived.
func (s *Stripe) KeysOf(pi string) []string {
	var keys []string
	for _, p := range s.Posts() {
		if p.PaymentIntent == pi {
			keys = append(keys, p.IdempotencyKey)
		}
	}
	return keys
}

// Inflight is the number of requests being answered now.
func (s *Stripe) Inflight() int64 { return s.inflight.Load() }

func intentJSON(pi *StripeIntent) map[string]any {
	var charge, reason, canceledAt any
	if pi.Charge != "" {
		charge = pi.Charge
	}
	if pi.CancellationReason != "" {
		reason = pi.CancellationReason
	}
	if !pi.CanceledAt.IsZero() {
		canceledAt = pi.CanceledAt.Unix()
	}
	return map[string]any{
		"id": pi.ID, "object": "payment_intent", "status": pi.Status, "amount": pi.Amount,
		"amount_capturable": pi.Capturable, "amount_received": pi.Received, "currency": "usd",
		"capture_method": "manual", "latest_charge": charge, "metadata": pi.Metadata,
		"cancellation_reason": reason, "canceled_at": canceledAt,
		"client_secret": pi.ID + "_secret_doNotLeak",
	}
}

func refundJSON(r *StripeRefund) map[string]any {
	var reason any
	if r.Reason != "" {
		reason = r.Reason
	}
	return map[string]any{
		"id": r.ID, "object": "refund", "amount": r.Amount, "currency": "usd", "payment_intent": r.PaymentIntent,
		"reason": reason, "status": r.Status, "metadata": r.Metadata,
	}
}

func writeStripeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_fake")
	_ = json.NewEncoder(w).Encode(v)
}

func writeStripeError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_fake")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(stripeErrorBody(typ, code, msg)))
}

// writeIntentError answers payment_intent_unexpected_state carrying the
// PaymentIntent, as Stripe does.
func writeIntentError(w http.ResponseWriter, pi *StripeIntent, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_fake")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"type": "invalid_request_error", "code": "payment_intent_unexpected_state", "message": msg,
		"payment_intent": intentJSON(pi),
	}})
}

// StripeError is the body of a Stripe error answer, for StripeFault.Body.
func StripeError(typ, code, msg string) string { return stripeErrorBody(typ, code, msg) }

func stripeErrorBody(typ, code, msg string) string {
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

func clone(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Client is an HTTP client for URL.
func (s *Stripe) Client() *http.Client { return s.srv.Client() }

// Close stops the fake: from then on its port refuses connections.
func (s *Stripe) Close() { s.srv.Close() }
