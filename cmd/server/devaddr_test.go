package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/testenv"
)

// TestDevRedisAddrMustBeLoopback: the embedded store has no password, so
// -dev refuses to put it anywhere a neighbour could reach.
func TestDevRedisAddrMustBeLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:6379", "example.com:6379", "10.1.2.3:0", "not-an-address"} {
		t.Run(addr, func(t *testing.T) {
			var out, errOut testenv.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, []string{"-dev", "-dev-redis-addr", addr, "-monitor-addr", "127.0.0.1:0"}, envOf(nil), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), "-dev-redis-addr") || !strings.Contains(err.Error(), "loopback") {
				t.Fatalf("-dev-redis-addr %s: got %v, want an error naming -dev-redis-addr and loopback", addr, err)
			}
			if strings.Contains(out.String(), "REDIS_URL") {
				t.Errorf("-dev-redis-addr %s: the store started: %s", addr, out.String())
			}
		})
	}
}
