package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/internal/apiurl"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// DefaultAPIBase is the Stripe API.
const DefaultAPIBase = stripe.APIURL

// StripeConfig configures a Stripe adapter.
type StripeConfig struct {
	// SecretKey is STRIPE_SECRET_KEY: a secret (sk_…) or restricted (rk_…)
	// key. It is never logged.
	SecretKey string
	// APIBase is STRIPE_API_BASE, scheme and host without /v1; empty is
	// DefaultAPIBase. Tests point it at stripe-mock or an httptest server.
	APIBase string
	// HTTPClient makes the requests; nil is a client with a 30 s timeout.
	HTTPClient *http.Client
}

// Stripe captures and refunds PaymentIntents. It implements
// handlers.Payments and is safe for concurrent use.
type Stripe struct {
	api    *client.API
	secret string
	log    *slog.Logger
}

var _ handlers.Payments = (*Stripe)(nil)

// NewStripe checks cfg and returns a Stripe adapter with its own stripe-go
// client. It makes no request. log receives one line per capture or refund
// and stripe-go's request lines at debug level (never bodies); nil
// discards them.
func NewStripe(cfg StripeConfig, log *slog.Logger) (*Stripe, error) {
	key := cfg.SecretKey
	if key == "" {
		return nil, errors.New("STRIPE_SECRET_KEY is empty")
	}
	if !printable(key) || !(strings.HasPrefix(key, "sk_") || strings.HasPrefix(key, "rk_")) {
		return nil, errors.New("STRIPE_SECRET_KEY: want a secret key (sk_…) or a restricted key (rk_…)")
	}
	u, err := apiurl.Parse("STRIPE_API_BASE", cfg.APIBase, DefaultAPIBase)
	if err != nil {
		return nil, err
	}
	base := u.String()
	if u.RawQuery != "" { // stripe-go appends the paths to the base as text
		return nil, fmt.Errorf("STRIPE_API_BASE %q: want an http(s) URL without a query, such as %s", base, DefaultAPIBase)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		HTTPClient:        hc,
		LeveledLogger:     stripeLogger{log: log, secret: key},
		MaxNetworkRetries: stripe.Int64(0), // asynq retries the job
		URL:               stripe.String(strings.TrimSuffix(base, "/")),
	})
	// Only the API backend is used; the others point at it too, so that no
	// call can reach a package-level backend.
	api := client.New(key, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
	return &Stripe{api: api, secret: key, log: log}, nil
}

// Capture captures c.PaymentIntentID (c.Amount, or all that is capturable
// when 0) with Idempotency-Key IdempotencyKey(c.JobID). It first
// retrieves the PaymentIntent: one that has succeeded is AlreadyDone with
// its latest charge; one in "processing" is a transient error; one that is
// canceled (its authorization expired, or someone released the hold) is a
// permanent error wrapping [ErrAuthorizationGone], and so is a capture that
// Stripe refuses because the authorization expired meanwhile; any other
// status (requires_payment_method, …) is permanent. The result ID is the
// charge ID.
func (s *Stripe) Capture(ctx context.Context, c handlers.Capture) (handlers.PaymentResult, error) {
	what := "capture " + c.PaymentIntentID
	if err := check(c.JobID, c.PaymentIntentID, c.Amount); err != nil {
		return handlers.PaymentResult{}, permanent(what, err)
	}
	key := IdempotencyKey(c.JobID)
	pi, err := s.intent(ctx, c.PaymentIntentID)
	if err != nil {
		return handlers.PaymentResult{}, err
	}
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		res := handlers.PaymentResult{ID: chargeID(pi), Status: string(pi.Status), AlreadyDone: true}
		if c.Amount > 0 && pi.AmountReceived != c.Amount {
			s.log.WarnContext(ctx, "stripe payment intent had already succeeded with another amount",
				"job", key, "transaction", c.TransactionID, "payment_intent", pi.ID,
				"amount_received", pi.AmountReceived, "amount_requested", c.Amount)
		}
		s.logDone(ctx, "stripe capture", key, c.TransactionID, pi.ID, res)
		return res, nil
	case stripe.PaymentIntentStatusRequiresCapture:
	case stripe.PaymentIntentStatusProcessing:
		return handlers.PaymentResult{}, fmt.Errorf("stripe: %s: payment intent is processing, not yet capturable", what)
	case stripe.PaymentIntentStatusCanceled:
		return handlers.PaymentResult{}, permanent(what, fmt.Errorf("%w: payment intent is canceled%s", ErrAuthorizationGone, cancellation(pi)))
	default:
		return handlers.PaymentResult{}, permanent(what, fmt.Errorf("payment intent is %s, not requires_capture", pi.Status))
	}
	res, err := s.capture(ctx, key, c)
	if err != nil {
		return handlers.PaymentResult{}, err
	}
	s.logDone(ctx, "stripe capture", key, c.TransactionID, c.PaymentIntentID, res)
	return res, nil
}

// intent retrieves PaymentIntent id.
func (s *Stripe) intent(ctx context.Context, id string) (*stripe.PaymentIntent, error) {
	pi, err := s.api.PaymentIntents.Get(id, &stripe.PaymentIntentParams{Params: stripe.Params{Context: ctx}})
	if err != nil {
		return nil, failure("retrieve "+id, s.secret, err)
	}
	return pi, nil
}

// capture sends the capture request itself, with Idempotency-Key key. A
// refusal because the authorization expired or was canceled is permanent
// and wraps ErrAuthorizationGone.
func (s *Stripe) capture(ctx context.Context, key string, c handlers.Capture) (handlers.PaymentResult, error) {
	what := "capture " + c.PaymentIntentID
	params := &stripe.PaymentIntentCaptureParams{Params: stripe.Params{Context: ctx}}
	params.SetIdempotencyKey(key)
	if c.Amount > 0 {
		params.AmountToCapture = stripe.Int64(c.Amount)
	}
	params.AddMetadata(MetadataJob, key)
	if c.TransactionID != "" {
		params.AddMetadata(MetadataTransaction, c.TransactionID)
	}
	pi, err := s.api.PaymentIntents.Capture(c.PaymentIntentID, params)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && authorizationGone(se) {
			return handlers.PaymentResult{}, permanent(what, fmt.Errorf("%w: %w", ErrAuthorizationGone, &textError{err: se, text: redact(describe(se), s.secret)}))
		}
		return handlers.PaymentResult{}, failure(what, s.secret, err)
	}
	return handlers.PaymentResult{ID: chargeID(pi), Status: string(pi.Status)}, nil
}

// authorizationGone reports whether Stripe refused a capture because the
// PaymentIntent's authorization expired or was canceled.
func authorizationGone(se *stripe.Error) bool {
	switch se.Code {
	case stripe.ErrorCodeChargeExpiredForCapture, stripe.ErrorCodeCaptureChargeAuthorizationExpired:
		return true
	case stripe.ErrorCodePaymentIntentUnexpectedState:
		return se.PaymentIntent != nil && se.PaymentIntent.Status == stripe.PaymentIntentStatusCanceled
	}
	return false
}

// cancellation is " (cancellation_reason R)" for a canceled pi with a reason.
func cancellation(pi *stripe.PaymentIntent) string {
	if pi.CancellationReason == "" {
		return ""
	}
	return " (cancellation_reason " + string(pi.CancellationReason) + ")"
}

// Refund gives the buyer's money back for r.PaymentIntentID. It first
// retrieves the PaymentIntent:
//
//   - "succeeded" (captured): a refund of r.Amount, or of what remains when
//     0, with Idempotency-Key IdempotencyKey(r.JobID). It first lists the
//     PaymentIntent's refunds to find this one already made: for a partial
//     refund the one whose MetadataRefund is its reference (r.RefundID,
//     required), for a full refund the one whose MetadataJob is the key. A
//     found refund is AlreadyDone (a permanent error when it failed or was
//     canceled, or when the reference was used for another amount: the
//     caller reused a reference, and neither refunding again nor reporting
//     success would be right). A new refund carries MetadataJob,
//     MetadataRefund and MetadataTransaction. The result ID is the refund ID.
//   - "requires_capture" (authorised, not captured): the PaymentIntent is
//     canceled, which releases the whole hold, with Idempotency-Key
//     [CancelKey](r.JobID) and r.Reason as its cancellation_reason. A
//     partial amount smaller than the hold is a permanent error: a hold is
//     released whole or not at all, and the part the seller keeps is
//     settled by capturing it (the capture releases the rest). The result
//     ID is the PaymentIntent's, status "canceled".
//   - "canceled": nothing is held, the buyer has the money: AlreadyDone.
//   - "processing": a transient error.
//   - any other status: nothing was authorised, a permanent error.
func (s *Stripe) Refund(ctx context.Context, r handlers.Refund) (handlers.PaymentResult, error) {
	what := "refund " + r.PaymentIntentID
	if r.RefundID != "" {
		what += " (refundId " + r.RefundID + ")"
	}
	if err := check(r.JobID, r.PaymentIntentID, r.Amount); err != nil {
		return handlers.PaymentResult{}, permanent(what, err)
	}
	if r.Amount > 0 && r.RefundID == "" {
		return handlers.PaymentResult{}, permanent(what, errors.New("a partial refund needs a refundId (the caller's reference)"))
	}
	pi, err := s.intent(ctx, r.PaymentIntentID)
	if err != nil {
		return handlers.PaymentResult{}, err
	}
	var res handlers.PaymentResult
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		res, err = s.refund(ctx, what, r)
	case stripe.PaymentIntentStatusRequiresCapture:
		if r.Amount > 0 && r.Amount != pi.AmountCapturable {
			return handlers.PaymentResult{}, permanent(what, fmt.Errorf(
				"a partial refund of %d of an uncaptured payment intent holding %d: a hold is released whole; capture the seller's part instead (that releases the rest)",
				r.Amount, pi.AmountCapturable))
		}
		res, err = s.cancel(ctx, what, r)
	case stripe.PaymentIntentStatusCanceled:
		res = handlers.PaymentResult{ID: pi.ID, Status: string(pi.Status), AlreadyDone: true}
	case stripe.PaymentIntentStatusProcessing:
		return handlers.PaymentResult{}, fmt.Errorf("stripe: %s: payment intent is processing, not yet refundable", what)
	default:
		return handlers.PaymentResult{}, permanent(what, fmt.Errorf("payment intent is %s: nothing was captured or held", pi.Status))
	}
	if err != nil {
		return handlers.PaymentResult{}, err
	}
	s.logDone(ctx, "stripe refund", IdempotencyKey(r.JobID), r.TransactionID, r.PaymentIntentID, res)
	return res, nil
}

// refund refunds the captured r.PaymentIntentID, once.
func (s *Stripe) refund(ctx context.Context, what string, r handlers.Refund) (handlers.PaymentResult, error) {
	key := IdempotencyKey(r.JobID)
	// A partial refund is found by its reference; a full refund (one per
	// PaymentIntent) by its job, whatever reference it carries, so a full
	// refund is never taken for an earlier partial one with that reference.
	reference := ""
	if r.Amount > 0 {
		reference = r.RefundID
	}
	found, err := s.findRefund(ctx, r.PaymentIntentID, key, reference)
	if err != nil {
		return handlers.PaymentResult{}, err
	}
	if found != nil {
		if found.Status == stripe.RefundStatusFailed || found.Status == stripe.RefundStatusCanceled {
			return handlers.PaymentResult{}, permanent(what, fmt.Errorf("this job's refund %s is %s", found.ID, found.Status))
		}
		if reference != "" && found.Amount != r.Amount {
			return handlers.PaymentResult{}, permanent(what, fmt.Errorf(
				"refundId %s was already used for refund %s of %d, not %d: use a new refundId for another refund",
				r.RefundID, found.ID, found.Amount, r.Amount))
		}
		return handlers.PaymentResult{ID: found.ID, Status: string(found.Status), AlreadyDone: true}, nil
	}
	params := &stripe.RefundParams{Params: stripe.Params{Context: ctx}, PaymentIntent: stripe.String(r.PaymentIntentID)}
	params.SetIdempotencyKey(key)
	if r.Amount > 0 {
		params.Amount = stripe.Int64(r.Amount)
	}
	if r.Reason != "" {
		params.Reason = stripe.String(r.Reason)
	}
	params.AddMetadata(MetadataJob, key)
	if r.RefundID != "" {
		params.AddMetadata(MetadataRefund, r.RefundID)
	}
	if r.TransactionID != "" {
		params.AddMetadata(MetadataTransaction, r.TransactionID)
	}
	ref, err := s.api.Refunds.New(params)
	if err != nil {
		return handlers.PaymentResult{}, failure(what, s.secret, err)
	}
	return handlers.PaymentResult{ID: ref.ID, Status: string(ref.Status)}, nil
}

// cancel cancels the uncaptured r.PaymentIntentID, releasing its hold,
// with Idempotency-Key CancelKey(r.JobID). Stripe refusing because the
// PaymentIntent is canceled already is AlreadyDone; because it was
// captured meanwhile, a transient error (the next attempt refunds it).
func (s *Stripe) cancel(ctx context.Context, what string, r handlers.Refund) (handlers.PaymentResult, error) {
	params := &stripe.PaymentIntentCancelParams{Params: stripe.Params{Context: ctx}}
	params.SetIdempotencyKey(CancelKey(r.JobID))
	if r.Reason != "" { // duplicate, fraudulent, requested_by_customer: valid for both
		params.CancellationReason = stripe.String(r.Reason)
	}
	pi, err := s.api.PaymentIntents.Cancel(r.PaymentIntentID, params)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Code == stripe.ErrorCodePaymentIntentUnexpectedState && se.PaymentIntent != nil {
			switch se.PaymentIntent.Status {
			case stripe.PaymentIntentStatusCanceled:
				return handlers.PaymentResult{ID: r.PaymentIntentID, Status: string(se.PaymentIntent.Status), AlreadyDone: true}, nil
			case stripe.PaymentIntentStatusSucceeded, stripe.PaymentIntentStatusProcessing:
				return handlers.PaymentResult{}, fmt.Errorf("stripe: %s: cancel: payment intent is %s now, to be refunded on the next attempt", what, se.PaymentIntent.Status)
			}
		}
		return handlers.PaymentResult{}, failure(what+": cancel", s.secret, err)
	}
	return handlers.PaymentResult{ID: pi.ID, Status: string(pi.Status)}, nil
}

// findRefund returns the refund of payment intent pi that is this one, or
// nil: the one whose MetadataRefund is refundID when refundID is set, else
// the one whose MetadataJob is key.
func (s *Stripe) findRefund(ctx context.Context, pi, key, refundID string) (*stripe.Refund, error) {
	it := s.api.Refunds.List(&stripe.RefundListParams{
		ListParams:    stripe.ListParams{Context: ctx, Limit: stripe.Int64(100)},
		PaymentIntent: stripe.String(pi),
	})
	for it.Next() {
		ref := it.Refund()
		if refundID != "" && ref.Metadata[MetadataRefund] == refundID || refundID == "" && ref.Metadata[MetadataJob] == key {
			return ref, nil
		}
	}
	if err := it.Err(); err != nil {
		return nil, failure("list refunds of "+pi, s.secret, err)
	}
	return nil, nil
}

func (s *Stripe) logDone(ctx context.Context, msg, key, tx, pi string, res handlers.PaymentResult) {
	s.log.InfoContext(ctx, msg, "job", key, "transaction", tx, "payment_intent", pi,
		"id", res.ID, "status", res.Status, "already_done", res.AlreadyDone)
}

// check rejects a request that can never succeed.
func check(jobKey, pi string, amount int64) error {
	switch {
	case jobKey == "":
		return errors.New("no idempotency key (job ID)")
	case pi == "":
		return errors.New("no payment intent ID")
	case amount < 0:
		return fmt.Errorf("negative amount %d", amount)
	}
	return nil
}

// chargeID is the ID of pi's latest charge, or pi's own ID without one.
func chargeID(pi *stripe.PaymentIntent) string {
	if pi.LatestCharge != nil && pi.LatestCharge.ID != "" {
		return pi.LatestCharge.ID
	}
	return pi.ID
}
