package worker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/retry"
)

// waitErr is a wait as partner.WaitError reports one.
type waitErr struct{ until time.Time }

func (e waitErr) Error() string        { return "waits" }
func (e waitErr) WaitUntil() time.Time { return e.until }

func TestWaitsAreNotFailuresAndComeBackNoEarlier(t *testing.T) {
	in := func(d time.Duration) error { return fmt.Errorf("webhook x: %w", waitErr{until: time.Now().Add(d)}) }
	tests := []struct {
		name        string
		err         error
		retried     int
		wantFailure bool
		min, max    time.Duration
	}{
		{"plain failure, first retry", errors.New("timeout"), 0, true, 2 * time.Second, 2 * time.Second},
		{"plain failure, third retry", errors.New("timeout"), 2, true, 8 * time.Second, 8 * time.Second},
		{"retry-after longer than the schedule", retry.After(30*time.Second, errors.New("429")), 0, true, 30 * time.Second, 30 * time.Second},
		{"wait of 300 ms", in(300 * time.Millisecond), 0, false, 300 * time.Millisecond, 1300 * time.Millisecond},
		{"wait of 2.5 s on the last retry", in(2500 * time.Millisecond), 3, false, 2500 * time.Millisecond, 3500 * time.Millisecond},
		{"wait already over", in(-time.Second), 1, false, 0, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isFailure(tt.err); got != tt.wantFailure {
				t.Errorf("isFailure: got %v, want %v", got, tt.wantFailure)
			}
			d := retryDelay(tt.retried, tt.err, nil)
			start := time.Now() // asynq adds d to the time after the call
			least := tt.min
			if until, wait := waitUntil(tt.err); wait {
				// No earlier than the wait's end, counted from after the
				// call (the case was built a while ago: no slack needed).
				least = max(0, until.Sub(start))
			}
			if d < least || d > tt.max {
				t.Errorf("retryDelay: got %s, want %s to %s", d, least, tt.max)
			}
			if _, wait := waitUntil(tt.err); wait {
				// asynq stores start+d truncated to a second: it must not
				// be before the wait's end.
				until, _ := waitUntil(tt.err)
				if stored := start.Add(d).Truncate(time.Second); stored.Before(until.Truncate(time.Millisecond)) && until.After(start) {
					t.Errorf("retry stored at %s, before the wait ends at %s", stored.Format(time.StampMilli), until.Format(time.StampMilli))
				}
			}
		})
	}
}
