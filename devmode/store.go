// Package devmode is what `cmd/server -dev` runs instead of production
// infrastructure: an embedded in-memory Redis (miniredis, [StartStore]),
// adapters that log what they would send ([Mailer], [Payments], [Sender],
// [Audit]) and a stream of demo events ([RunDemo]). Nothing here survives
// a restart.
package devmode

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// DefaultAddr is where the embedded store listens when it is free.
const DefaultAddr = "127.0.0.1:6379"

// Store is an embedded in-memory Redis.
type Store struct {
	m    *miniredis.Miniredis
	stop context.CancelFunc
	done chan struct{}
}

// StartStore starts the store on addr; when addr is DefaultAddr and that
// port is taken (a real Redis runs there), it uses a free port instead.
// Its clock follows the wall clock, so TTLs (retention, locks) expire.
func StartStore(addr string) (*Store, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	m := miniredis.NewMiniRedis()
	err := m.StartAddr(addr)
	if err != nil && addr == DefaultAddr && errors.Is(err, syscall.EADDRINUSE) {
		err = m.StartAddr("127.0.0.1:0")
	}
	if err != nil {
		return nil, fmt.Errorf("dev store: listen on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{m: m, stop: cancel, done: make(chan struct{})}
	go s.tick(ctx)
	return s, nil
}

// tick advances miniredis's clock with the wall clock: miniredis expires
// keys only when told time passed.
func (s *Store) tick(ctx context.Context) {
	defer close(s.done)
	last := time.Now()
	s.m.SetTime(last)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.m.SetTime(now)
			s.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Addr is host:port of the store.
func (s *Store) Addr() string { return s.m.Addr() }

// URL is the REDIS_URL to export for jobctl and the monitor.
func (s *Store) URL() string { return "redis://" + s.Addr() + "/0" }

// Close stops the store; everything in it is gone.
func (s *Store) Close() {
	s.stop()
	<-s.done
	s.m.Close()
}
