// Package payments captures and refunds escrow payments through Stripe. Its
// [Stripe] implements handlers.Payments with a stripe-go v76 client built
// for the instance: no global key, no global backend, no network retries
// inside stripe-go (asynq retries the job).
//
// # Idempotency
//
// Every capture and refund request carries the Idempotency-Key
// [IdempotencyKey](jobID), the same on every attempt of the job. Stripe
// forgets keys after 24 hours, so each call first reads state:
//
//   - Capture retrieves the PaymentIntent. "succeeded" means the capture has
//     already happened: the result is its latest charge, AlreadyDone.
//     "requires_capture" is captured. "processing" is retried later.
//     "canceled" (the authorization expired, or the hold was released) is
//     permanent and wraps [ErrAuthorizationGone], as is a capture Stripe
//     refuses with charge_expired_for_capture,
//     capture_charge_authorization_expired, or
//     payment_intent_unexpected_state for a canceled PaymentIntent. Any
//     other status (requires_payment_method, …) is permanent.
//   - Refund retrieves the PaymentIntent too. One still in
//     "requires_capture" was never captured: the buyer's money is given back
//     by canceling it, which releases the whole hold (Idempotency-Key
//     [CancelKey](jobID)); a partial amount smaller than the hold is
//     permanent, since the part the seller keeps is settled by capturing
//     it. One "canceled" is done already. One "succeeded" is refunded: the
//     PaymentIntent's refunds are listed first. For a refund with the
//     caller's reference (RefundID, required for a partial refund) the one
//     whose metadata [MetadataRefund] is that reference is this refund;
//     for a full refund without one, the one whose [MetadataJob] is the
//     job's key. A found refund is the result, AlreadyDone (a reference
//     found on a refund of another amount is a permanent error). Otherwise
//     a refund is created carrying [MetadataJob], [MetadataRefund] and
//     [MetadataTransaction].
//
// # Errors
//
// A failure that retrying does not fix wraps asynq.SkipRetry and keeps the
// *stripe.Error as its cause (errors.Is and errors.As see both): a
// card_error (HTTP 402), an invalid_request_error, an idempotency_error
// (the same key with other parameters), authentication and permission
// errors, and any answer with Stripe-Should-Retry: false. Network errors,
// timeouts, 409 and lock_timeout, 429, 5xx and any answer with
// Stripe-Should-Retry: true are transient; a Retry-After comes back as a
// *retry.AfterError. Error texts are built from the error's type, code,
// status, message and request ID, never from the raw body (which can hold
// a PaymentIntent's client secret). The secret key is never logged, and of
// stripe-go's own log lines only the request lines are kept, never bodies.
package payments
