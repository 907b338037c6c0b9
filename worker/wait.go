package worker

import (
	"errors"
	"time"

	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/hibiken/asynq"
)

// waiter is an error that asks for its job to come back later without
// spending an attempt: nothing was done (partner.WaitError: the partner's
// circuit is open, it is throttled or at its limits).
type waiter interface{ WaitUntil() time.Time }

// waitUntil reports whether err is a wait, and until when.
func waitUntil(err error) (time.Time, bool) {
	var w waiter
	if errors.As(err, &w) {
		return w.WaitUntil(), true
	}
	return time.Time{}, false
}

// isFailure is asynq's Config.IsFailure: a wait is not a failed attempt,
// so the job keeps its budget.
func isFailure(err error) bool {
	_, wait := waitUntil(err)
	return !wait
}

// retryDelay is asynq's Config.RetryDelayFunc: 2 s, 4 s, 8 s (or a longer
// Retry-After) after a failure; for a wait, the time to its end rounded up
// to the next whole second, because asynq stores the retry time in whole
// seconds (truncated) and must not bring the job back early. The job then
// spends its wait in asynq's retry set, holding no worker slot.
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	until, wait := waitUntil(err)
	if !wait {
		return retry.Delay(n, err)
	}
	return max(time.Until(wholeSecondAfter(until)), 0)
}

// wholeSecondAfter is t rounded up to a whole second.
func wholeSecondAfter(t time.Time) time.Time {
	at := t.Truncate(time.Second)
	if at.Before(t) {
		at = at.Add(time.Second)
	}
	return at
}
