package partner

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnknownPartner is returned (wrapping asynq.SkipRetry) for a delivery
// to a partner the registry does not have. The job becomes a dead letter
// with reason "unknown partner" and is redelivered once the partner is
// added to the registry.
var ErrUnknownPartner = errors.New("unknown partner")

// ErrEndpointDisabled is returned (wrapping asynq.SkipRetry) for a delivery
// to a disabled partner (its endpoint answered 410 Gone, or an operator
// disabled it). The job becomes a dead letter with reason "endpoint
// disabled" and is redelivered when the partner is enabled.
var ErrEndpointDisabled = errors.New("endpoint disabled")

// Reasons a delivery waits.
const (
	WaitCircuitOpen = "circuit open"
	WaitThrottled   = "partner throttled"
	WaitConcurrency = "partner at maxConcurrency"
	WaitRate        = "partner at ratePerSecond"
	// WaitInOrder: the partner is "ordered" and an earlier event of the
	// same escrow is not delivered, discarded or finally dead yet.
	WaitInOrder = "waiting for an earlier event"
)

// ErrWaitsInOrder is returned (not as a wait) by a delivery that must
// wait for an earlier event of its escrow on its last attempt, where
// asynq would archive a wait: the job becomes a dead letter that
// Redelivery brings back without spending a step of its schedule, as
// soon as the event ahead of it is released (or after
// StateConfig.OrderRecheck).
var ErrWaitsInOrder = errors.New("waiting for an earlier event of the escrow")

// WaitError is returned when a delivery may not start yet: the partner's
// circuit is open, it asked for a pause (429/503 Retry-After), or it is at
// its concurrency or rate limit. Nothing was sent. It is not a failed
// attempt: the worker's IsFailure says so (the attempt is not spent) and
// its RetryDelayFunc brings the job back at Until, so the wait holds no
// worker slot.
type WaitError struct {
	Partner string
	Reason  string
	Until   time.Time
	// Head is, for WaitInOrder, the job of the earlier event it waits
	// for, and Ahead how many open events of its escrow are ahead of it.
	Head  string
	Ahead int
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("webhook to partner %s waits (%s) until %s", e.Partner, e.Reason, e.Until.UTC().Format(time.RFC3339Nano))
}

// WaitUntil is when the delivery may be tried again; the worker recognises
// any error with this method as a wait.
func (e *WaitError) WaitUntil() time.Time { return e.Until }
