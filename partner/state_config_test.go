package partner

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestNewStateFillsUnsetNumbers: zero and negative numbers take their
// defaults, set ones are kept, and Redis is required.
func TestNewStateFillsUnsetNumbers(t *testing.T) {
	if _, err := NewState(StateConfig{}); err == nil {
		t.Error("NewState without Redis: got no error, want one")
	}
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rc.Close()
	defLease := 2*DefaultTimeout + 10*time.Second
	for _, tc := range []struct {
		name     string
		failures int
		probe    time.Duration
		lease    time.Duration
		want     StateConfig
	}{
		{"zero", 0, 0, 0, StateConfig{BreakerFailures: DefaultBreakerFailures, BreakerProbe: DefaultBreakerProbe, Lease: defLease}},
		{"negative", -1, -time.Second, -time.Second, StateConfig{BreakerFailures: DefaultBreakerFailures, BreakerProbe: DefaultBreakerProbe, Lease: defLease}},
		{"set", 3, time.Second, time.Minute, StateConfig{BreakerFailures: 3, BreakerProbe: time.Second, Lease: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewState(StateConfig{Redis: rc, BreakerFailures: tc.failures, BreakerProbe: tc.probe, Lease: tc.lease})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.cfg; got.BreakerFailures != tc.want.BreakerFailures || got.BreakerProbe != tc.want.BreakerProbe || got.Lease != tc.want.Lease {
				t.Errorf("got failures %d, probe %v, lease %v; want %d, %v, %v",
					got.BreakerFailures, got.BreakerProbe, got.Lease, tc.want.BreakerFailures, tc.want.BreakerProbe, tc.want.Lease)
			}
		})
	}
}
