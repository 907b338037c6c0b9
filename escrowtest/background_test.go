package escrowtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
)

// recordingTB keeps what a helper reports instead of failing the test.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Helper()        {}
func (r *recordingTB) Cleanup(func()) {}
func (r *recordingTB) Errorf(format string, a ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, a...))
}

func TestBackgroundStop(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context) error
		want string // "" = no error reported
	}{
		{"returns nil on cancel", func(ctx context.Context) error { <-ctx.Done(); return nil }, ""},
		{"returns an error on cancel", func(ctx context.Context) error { <-ctx.Done(); return errors.New("boom") }, "api: got boom after cancel, want nil"},
		{"ignores cancel", func(ctx context.Context) error { time.Sleep(time.Second); return nil }, "api did not return within 50ms of cancel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			b := escrowtest.Start(rec, "api", 50*time.Millisecond, tc.run)
			if _, done := b.Exited(); done {
				t.Fatal("Exited before Stop: got true, want false")
			}
			b.Stop()
			b.Stop() // a second Stop (the cleanup's) reports nothing more
			got := strings.Join(rec.errors, "; ")
			if got != tc.want {
				t.Errorf("reported: got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBackgroundExitedSeesAnEarlyReturn(t *testing.T) {
	rec := &recordingTB{TB: t}
	b := escrowtest.Start(rec, "run", time.Second, func(context.Context) error { return errors.New("no port") })
	escrowtest.Eventually(t, "run returned", time.Second, func() bool { _, done := b.Exited(); return done })
	if err, _ := b.Exited(); err == nil || err.Error() != "no port" {
		t.Fatalf("Exited: got %v, want no port", err)
	}
	b.Stop()
	if want := "run: got no port after cancel, want nil"; len(rec.errors) != 1 || rec.errors[0] != want {
		t.Errorf("reported: got %q, want %q", rec.errors, want)
	}
}
