package retry_test

import (
	"context"
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

func TestWait(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want bool
	}{
		{"no pause", live, 0, true},
		{"negative pause", live, -time.Second, true},
		{"short pause", live, time.Millisecond, true},
		{"ended context, no pause", ended, 0, false},
		{"ended context, long pause", ended, time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retry.Wait(tc.ctx, tc.d); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("context ends during the pause", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(10*time.Millisecond, cancel)
		if retry.Wait(ctx, time.Hour) {
			t.Error("got true, want false once the context ended")
		}
	})
}
