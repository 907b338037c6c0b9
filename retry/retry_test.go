package retry_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/hibiken/asynq"
)

func TestDelay(t *testing.T) {
	plain := errors.New("boom")
	cases := []struct {
		n    int
		err  error
		want time.Duration
	}{
		{0, plain, 2 * time.Second},
		{1, plain, 4 * time.Second},
		{2, plain, 8 * time.Second},
		{0, retry.After(30*time.Second, plain), 30 * time.Second},
		{2, retry.After(time.Second, plain), 8 * time.Second},
		{1, fmt.Errorf("wrapped: %w", retry.After(10*time.Second, plain)), 10 * time.Second},
	}
	for _, c := range cases {
		if got := retry.Delay(c.n, c.err); got != c.want {
			t.Errorf("Delay(%d, %v): got %v, want %v", c.n, c.err, got, c.want)
		}
	}
}

func TestIsPermanent(t *testing.T) {
	if !retry.IsPermanent(fmt.Errorf("x: %w", asynq.SkipRetry)) {
		t.Error("got false for a SkipRetry error, want true")
	}
	if retry.IsPermanent(errors.New("x")) {
		t.Error("got true for a plain error, want false")
	}
}

func TestParseAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"30", 30 * time.Second, true},
		{" 5 ", 5 * time.Second, true},
		{"Sun, 29 Nov 2026 10:01:00 GMT", time.Minute, true},
		{"999999999", retry.MaxAfter, true},
		{"0", 0, false},
		{"-3", 0, false},
		{"Sun, 29 Nov 2026 09:00:00 GMT", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		if got, ok := retry.ParseAfter(c.v, now); got != c.want || ok != c.ok {
			t.Errorf("ParseAfter(%q): got (%v, %v), want (%v, %v)", c.v, got, ok, c.want, c.ok)
		}
	}
}

func TestAfterHeader(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	base := errors.New("peer busy")
	for _, tc := range []struct {
		header string
		want   time.Duration // 0: err comes back unwrapped
	}{
		{"20", 20 * time.Second},
		{"Sun, 29 Nov 2026 10:02:00 GMT", 2 * time.Minute},
		{"", 0},
		{"soon", 0},
		{"0", 0},
	} {
		err := retry.AfterHeader(tc.header, now, base)
		var ae *retry.AfterError
		switch {
		case tc.want == 0 && err != base:
			t.Errorf("AfterHeader(%q): got %v, want the error unchanged", tc.header, err)
		case tc.want != 0 && (!errors.As(err, &ae) || ae.After != tc.want || !errors.Is(err, base)):
			t.Errorf("AfterHeader(%q): got %v, want an AfterError of %v around the error", tc.header, err, tc.want)
		}
	}
}
