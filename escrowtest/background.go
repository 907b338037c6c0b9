package escrowtest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Background is a blocking run function (a binary's run, a relay's or a
// scheduler's Run) running in a goroutine for the length of a test.
type Background struct {
	t      testing.TB
	what   string
	wait   time.Duration
	cancel context.CancelFunc
	exited chan struct{} // closed when run has returned
	err    error         // run's result, set before exited is closed
	once   sync.Once
}

// Start runs run(ctx) in a goroutine until [Background.Stop] or the end of
// the test: both cancel ctx and want run to return nil within wait. what
// names it in failure messages ("escrow API", "run").
func Start(t testing.TB, what string, wait time.Duration, run func(ctx context.Context) error) *Background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &Background{t: t, what: what, wait: wait, cancel: cancel, exited: make(chan struct{})}
	go func() {
		b.err = run(ctx)
		close(b.exited)
	}()
	t.Cleanup(b.Stop)
	return b
}

// Exited reports whether run has returned already, and what it returned:
// a start-up check uses it to fail fast instead of waiting out a deadline.
func (b *Background) Exited() (error, bool) {
	select {
	case <-b.exited:
		return b.err, true
	default:
		return nil, false
	}
}

// Stop cancels run's context and fails the test unless run returns nil
// within the wait given to [Start]. Later calls do nothing.
func (b *Background) Stop() {
	b.once.Do(func() {
		b.t.Helper()
		b.cancel()
		select {
		case <-b.exited:
			if b.err != nil {
				b.t.Errorf("%s: got %v after cancel, want nil", b.what, b.err)
			}
		case <-time.After(b.wait):
			b.t.Errorf("%s did not return within %s of cancel", b.what, b.wait)
		}
	})
}
