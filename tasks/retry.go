package tasks

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// MaxRetry is the retry budget of every job: one attempt plus three retries.
const MaxRetry = 3

// Schedule is the pause before retry 1, 2 and 3.
var schedule = [MaxRetry]time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}

// RetryAfterError is a transient failure whose peer asked for a pause
// (an HTTP Retry-After). A pause longer than the schedule's is honoured.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

// RetryAfter wraps err with the peer's requested pause.
func RetryAfter(d time.Duration, err error) error { return &RetryAfterError{After: d, Err: err} }

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryDelay is the pause after the failure of attempt n+1 (n retries so
// far): 2 s, 4 s, 8 s, or the peer's Retry-After when it is longer.
func RetryDelay(n int, err error) time.Duration {
	d := schedule[min(max(n, 0), MaxRetry-1)]
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > d {
		d = ra.After
	}
	return d
}

// IsPermanent reports whether err archives the job at once.
func IsPermanent(err error) bool { return errors.Is(err, asynq.SkipRetry) }

// MaxRetryAfter caps a peer's Retry-After, so a bogus value cannot park a
// job for days.
const MaxRetryAfter = time.Hour

// ParseRetryAfter reads an HTTP Retry-After value (delay-seconds or an HTTP
// date, relative to now) as a positive pause of at most MaxRetryAfter. It
// reports false for an empty, unparsable, zero or past value: the schedule
// then applies.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		d = time.Duration(min(secs, uint64(MaxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	if d <= 0 {
		return 0, false
	}
	return min(d, MaxRetryAfter), true
}
