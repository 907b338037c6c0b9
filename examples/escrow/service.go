package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// terms are what POST /escrows asks for and the escrow keeps.
type terms struct {
	ID              string `json:"id"`
	BuyerEmail      string `json:"buyerEmail"`
	SellerEmail     string `json:"sellerEmail"`
	Amount          int64  `json:"amount"`
	Currency        string `json:"currency"`
	PaymentIntentID string `json:"paymentIntentId"`
	PartnerID       string `json:"partnerId,omitempty"`
}

// escrow is one row of the escrows table, and the answer of a change.
type escrow struct {
	terms
	Status       string    `json:"status"`
	DisputeID    string    `json:"disputeId,omitempty"`
	Resolution   string    `json:"resolution,omitempty"`
	SellerAmount int64     `json:"sellerAmount,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// escrowView is the GET answer: the escrow with the status its flows
// report and the flows themselves.
type escrowView struct {
	escrow
	Flows []flowSummary `json:"flows"`
}

// Service is the escrow API.
type Service struct {
	db    *pgxpool.Pool
	flows flowReader
	log   *slog.Logger
	now   func() time.Time
}

// NewService serves escrows from db (Migrate must have run); fr reads the
// escrows' flows (a *flows.Store on the jobs' Redis).
func NewService(db *pgxpool.Pool, fr flowReader, log *slog.Logger) *Service {
	return &Service{db: db, flows: fr, log: log, now: time.Now}
}

// Handler routes the API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /escrows", withBody(s, s.create))
	mux.HandleFunc("GET /escrows/{id}", s.get)
	mux.HandleFunc("POST /escrows/{id}/release", withBody(s, s.release))
	mux.HandleFunc("POST /escrows/{id}/refund", withBody(s, s.refund))
	mux.HandleFunc("POST /escrows/{id}/dispute", withBody(s, s.dispute))
	mux.HandleFunc("POST /escrows/{id}/resolve", withBody(s, s.resolve))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			// No route, or not this method: the mux's answer, in JSON.
			w = &jsonError{ResponseWriter: w}
		}
		mux.ServeHTTP(w, r)
	})
}

// jsonError turns the mux's plain-text 404 and 405 (with its Allow
// header) into {"error": …} like every other answer.
type jsonError struct {
	http.ResponseWriter
	wrote bool
}

func (j *jsonError) WriteHeader(code int) {
	j.wrote = true
	j.Header().Del("X-Content-Type-Options")
	msg := "no such route"
	if code == http.StatusMethodNotAllowed {
		msg = "method not allowed; allowed: " + j.Header().Get("Allow")
	}
	writeJSON(j.ResponseWriter, code, map[string]any{"error": msg})
}

// Write drops the mux's plain-text body.
func (j *jsonError) Write(b []byte) (int, error) {
	if !j.wrote {
		j.WriteHeader(http.StatusNotFound)
	}
	return len(b), nil
}

// withBody decodes the request body into a Req (strictly, see decode: a
// bad body is a 400) and hands it to h.
func withBody[Req any](s *Service, h func(http.ResponseWriter, *http.Request, Req)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decode(w, r, &req); err != nil {
			s.fail(w, err)
			return
		}
		h(w, r, req)
	}
}

// requestError is a 400: the request's bad fields.
type requestError struct {
	Fields []payloads.FieldError `json:"fields"`
}

func (e *requestError) Error() string {
	var parts []string
	for _, f := range e.Fields {
		parts = append(parts, f.Field+": "+f.Message)
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// conflictError is a 409: the escrow's status does not allow the change,
// or a field's value is taken by another escrow (field).
type conflictError struct{ msg, status, field string }

func (e *conflictError) Error() string { return e.msg }

// errNotFound is returned when no escrow has the ID.
var errNotFound = errors.New("escrow not found")

func (s *Service) create(w http.ResponseWriter, r *http.Request, req terms) {
	now := s.now()
	e := escrow{terms: req, Status: payloads.StatusFunded, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
	f, err := fundFlow(e, now).build()
	if err != nil {
		s.fail(w, err)
		return
	}
	err = pgx.BeginFunc(r.Context(), s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(r.Context(), `
			INSERT INTO escrows (id, status, buyer_email, seller_email, amount, currency, payment_intent_id, partner_id, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (id) DO NOTHING`,
			e.ID, e.Status, e.BuyerEmail, e.SellerEmail, e.Amount, e.Currency, e.PaymentIntentID, e.PartnerID, e.CreatedAt)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == paymentIntentIndex {
			return &conflictError{field: "paymentIntentId", msg: "paymentIntentId " + e.PaymentIntentID + " belongs to another escrow"}
		}
		if err != nil {
			return fmt.Errorf("insert escrow: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return &conflictError{msg: "escrow " + e.ID + " already exists"}
		}
		return flows.Add(r.Context(), tx, f)
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("escrow created", "escrow_id", e.ID, "flow_id", f.ID())
	writeJSON(w, http.StatusCreated, e)
}

// get answers the escrow with its flows, read live, and the status that
// says where its money is (reportedStatus). A settled status (released,
// refunded, resolved) is written back to the table, so that it outlives
// the flow's retention in Redis. Redis unreachable: the table's status and
// no flows.
func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	e, err := load(ctx, s.db, r.PathValue("id"), false)
	if err != nil {
		s.fail(w, err)
		return
	}
	views, err := flowsOf(ctx, s.flows, e.ID)
	if err != nil {
		s.log.Warn("escrow flows unavailable; answering the stored status", "escrow_id", e.ID, "error", err.Error())
		writeJSON(w, http.StatusOK, escrowView{escrow: e})
		return
	}
	if status := reportedStatus(e.Status, views); status != e.Status {
		if status == movingStatuses[e.Status].done {
			s.settle(ctx, s.db, e.ID, e.Status, status)
		}
		e.Status = status
	}
	writeJSON(w, http.StatusOK, escrowView{escrow: e, Flows: summaries(views)})
}

// settle moves escrow id from the moving status from to its settled status
// to (its money step completed; nothing changes that), unless another
// change came first.
func (s *Service) settle(ctx context.Context, q execer, id, from, to string) {
	if _, err := q.Exec(ctx, `UPDATE escrows SET status = $3, updated_at = now() WHERE id = $1 AND status = $2`, id, from, to); err != nil {
		s.log.Warn("escrow status not settled; the next read tries again", "escrow_id", id, "status", to, "error", err.Error())
	}
}

func (s *Service) release(w http.ResponseWriter, r *http.Request, _ struct{}) {
	s.transition(w, r, "release", []string{payloads.StatusFunded}, statusReleasing,
		func(e escrow, at time.Time) *plan { return releaseFlow(e, at) })
}

type refundRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (s *Service) refund(w http.ResponseWriter, r *http.Request, req refundRequest) {
	s.transition(w, r, "refund", []string{payloads.StatusFunded}, statusRefunding,
		func(e escrow, at time.Time) *plan { return refundFlow(e, req.Reason, at) })
}

type disputeRequest struct {
	DisputeID string `json:"disputeId"`
	Reason    string `json:"reason"`
}

func (s *Service) dispute(w http.ResponseWriter, r *http.Request, req disputeRequest) {
	s.transition(w, r, "dispute", []string{payloads.StatusFunded}, payloads.StatusDisputed,
		func(e escrow, at time.Time) *plan { return disputeFlow(e, req.DisputeID, req.Reason, at) },
		column{"dispute_id", req.DisputeID})
}

type resolveRequest struct {
	Resolution string `json:"resolution"`
	// SellerAmount is the seller's part of a split, in minor units.
	SellerAmount *int64 `json:"sellerAmount,omitempty"`
}

func (s *Service) resolve(w http.ResponseWriter, r *http.Request, req resolveRequest) {
	var seller int64
	if req.SellerAmount != nil {
		seller = *req.SellerAmount
	}
	s.transition(w, r, "resolve", []string{payloads.StatusDisputed}, statusResolving,
		func(e escrow, at time.Time) *plan { return resolveFlow(e, req.Resolution, req.SellerAmount, at) },
		column{"resolution", req.Resolution}, column{"seller_amount", seller})
}

// column is one more column of escrows a transition sets: its name (a
// constant, never input) and its value from the request.
type column struct {
	name  string
	value any
}

// transition moves escrow {id} from one of the statuses in from to to, and
// adds the flow build returns, in one transaction. A status outside from is
// 409 (whatever the body says), also while the money of an earlier
// transition is moving or its flow failed (releasing, release_failed, …:
// the failed step is repaired by requeueing its dead letter, not by
// another transition); then a field build's constructors reject is 400.
// set updates more columns in the same transaction.
func (s *Service) transition(w http.ResponseWriter, r *http.Request, verb string, from []string, to string,
	build func(escrow, time.Time) *plan, set ...column) {
	ctx := r.Context()
	var out escrow
	var flowID string
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		e, err := load(ctx, tx, r.PathValue("id"), true)
		if err != nil {
			return err
		}
		if _, ok := movingStatuses[e.Status]; ok {
			// Say where the money is, and settle a completed move.
			views, err := flowsOf(ctx, s.flows, e.ID)
			if err != nil {
				return fmt.Errorf("read flows: %w", err)
			}
			if status := reportedStatus(e.Status, views); status != e.Status {
				if status == movingStatuses[e.Status].done {
					s.settle(ctx, tx, e.ID, e.Status, status)
				}
				e.Status = status
			}
		}
		if !slices.Contains(from, e.Status) {
			return &conflictError{status: e.Status,
				msg: fmt.Sprintf("escrow %s is %s; %s needs status %s", e.ID, e.Status, verb, strings.Join(from, " or "))}
		}
		now := s.now()
		f, err := build(e, now).build()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE escrows SET status = $2, updated_at = $3 WHERE id = $1`, e.ID, to, now.UTC()); err != nil {
			return fmt.Errorf("update escrow: %w", err)
		}
		for _, c := range set {
			if _, err := tx.Exec(ctx, `UPDATE escrows SET `+c.name+` = $2 WHERE id = $1`, e.ID, c.value); err != nil {
				return fmt.Errorf("update escrow: %w", err)
			}
		}
		if err := flows.Add(ctx, tx, f); err != nil {
			return err
		}
		out, err = load(ctx, tx, e.ID, false)
		flowID = f.ID()
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("escrow "+to, "escrow_id", out.ID, "flow_id", flowID)
	writeJSON(w, http.StatusOK, out)
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func load(ctx context.Context, q querier, id string, lock bool) (escrow, error) {
	sql := `SELECT id, status, buyer_email, seller_email, amount, currency, payment_intent_id, partner_id,
		dispute_id, resolution, seller_amount, created_at, updated_at FROM escrows WHERE id = $1`
	if lock {
		sql += " FOR UPDATE"
	}
	var e escrow
	err := q.QueryRow(ctx, sql, id).Scan(&e.ID, &e.Status, &e.BuyerEmail, &e.SellerEmail, &e.Amount, &e.Currency,
		&e.PaymentIntentID, &e.PartnerID, &e.DisputeID, &e.Resolution, &e.SellerAmount, &e.CreatedAt, &e.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return escrow{}, errNotFound
	}
	if err != nil {
		return escrow{}, fmt.Errorf("read escrow: %w", err)
	}
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return e, nil
}

// maxBody caps a request body.
const maxBody = 64 << 10

// errTooLarge is a 413: the body is over maxBody.
var errTooLarge = fmt.Errorf("request body over %d bytes", maxBody)

// decode reads a JSON object into v, strictly: unknown fields, a wrong type
// and trailing data are 400s naming the field, a body over maxBody is
// errTooLarge. An empty body is an empty object.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	var me *http.MaxBytesError
	switch {
	case errors.As(err, &me):
		return errTooLarge
	case errors.As(err, &te) && te.Field != "":
		return &requestError{Fields: []payloads.FieldError{{Field: te.Field, Message: "must be " + jsonKind(te.Type.Kind().String())}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &requestError{Fields: []payloads.FieldError{{Field: payloads.MaskEmailsString(name), Message: "unknown field"}}}
	}
	return &requestError{Fields: []payloads.FieldError{{Field: "body", Message: "not a valid JSON object: " + payloads.MaskEmailsString(err.Error())}}}
}

// jsonKind says what a field of the Go kind must be: the service's integers
// are amounts in minor units (cents).
func jsonKind(goKind string) string {
	switch goKind {
	case "int64", "int":
		return "an integer number of minor units"
	case "float64":
		return "a JSON number"
	case "string":
		return "a JSON string"
	case "struct":
		return "a JSON object"
	}
	return "a JSON " + goKind
}

// fail answers err: 400 for bad input, 404, 413 for a body too large, 409 for a status that does not
// allow the change, 500 (logged, not shown) otherwise.
func (s *Service) fail(w http.ResponseWriter, err error) {
	var re *requestError
	var ce *conflictError
	switch {
	case errors.As(err, &re):
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": re.Error(), "fields": re.Fields})
	case errors.Is(err, errNotFound):
		writeJSON(w, http.StatusNotFound, map[string]any{"error": err.Error()})
	case errors.Is(err, errTooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": err.Error()})
	case errors.As(err, &ce):
		body := map[string]any{"error": ce.Error()}
		if ce.status != "" {
			body["status"] = ce.status
		}
		if ce.field != "" {
			body["fields"] = []payloads.FieldError{{Field: ce.field, Message: "already used by another escrow"}}
		}
		writeJSON(w, http.StatusConflict, body)
	default:
		s.log.Error("escrow API: internal error", "error", payloads.MaskEmailsString(err.Error()))
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error; see the service log"})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
