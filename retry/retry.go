// Package retry is the retry policy of every escrow job: one attempt plus
// three retries ([Max]), 2 s, 4 s and 8 s after each failure ([Delay]),
// a peer's longer Retry-After honoured ([After], [ParseAfter]), and a
// failure that wraps asynq.SkipRetry archived at once ([IsPermanent]).
//
// It is a leaf: adapters (email, payments, webhook) report a peer's pause
// with [After], package tasks builds jobs with [Max], and package worker
// schedules retries with [Delay]. The loops that retry on their own (the
// outbox relay, the scheduler, the worker's wake-up subscription) pause
// between tries with [Wait].
package retry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Max is the retry budget of every job: one attempt plus three retries.
const Max = 3

// schedule is the pause before retry 1, 2 and 3.
var schedule = [Max]time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}

// AfterError is a transient failure whose peer asked for a pause (an HTTP
// Retry-After). A pause longer than the schedule's is honoured.
type AfterError struct {
	After time.Duration
	Err   error
}

// After wraps err with the peer's requested pause.
func After(d time.Duration, err error) error { return &AfterError{After: d, Err: err} }

func (e *AfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

func (e *AfterError) Unwrap() error { return e.Err }

// Delay is the pause after the failure of attempt n+1 (n retries so far):
// 2 s, 4 s, 8 s, or the peer's Retry-After when it is longer.
func Delay(n int, err error) time.Duration {
	d := schedule[min(max(n, 0), Max-1)]
	var ra *AfterError
	if errors.As(err, &ra) && ra.After > d {
		d = ra.After
	}
	return d
}

// AfterHeader wraps err with the pause an HTTP Retry-After value asks for
// (ParseAfter, relative to now), or returns err as it is when the value is
// empty, unparsable, zero or past: the schedule then applies.
func AfterHeader(retryAfter string, now time.Time, err error) error {
	if d, ok := ParseAfter(retryAfter, now); ok {
		return After(d, err)
	}
	return err
}

// IsPermanent reports whether err archives the job at once.
func IsPermanent(err error) bool { return errors.Is(err, asynq.SkipRetry) }

// MaxAfter caps a peer's Retry-After, so a bogus value cannot park a job
// for days.
const MaxAfter = time.Hour

// ParseAfter reads an HTTP Retry-After value (delay-seconds or an HTTP
// date, relative to now) as a positive pause of at most MaxAfter. It
// reports false for an empty, unparsable, zero or past value: the schedule
// then applies.
func ParseAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		d = time.Duration(min(secs, uint64(MaxAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	if d <= 0 {
		return 0, false
	}
	return min(d, MaxAfter), true
}

// Wait pauses for d, or until ctx ends if that comes first. It reports
// whether the whole pause passed: false means ctx ended and the caller
// should stop. A d of zero or less does not pause.
func Wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
