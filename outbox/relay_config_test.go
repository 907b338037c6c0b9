package outbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
)

type nopEnqueuer struct{}

func (nopEnqueuer) Enqueue(context.Context, *tasks.Task) (string, error) { return "", nil }

// TestNewRelayChecksItsConfig: DB and Client are named when missing; zero
// and negative numbers take their defaults, set ones are kept, and there is
// one wake channel per claimer.
func TestNewRelayChecksItsConfig(t *testing.T) {
	ctx := context.Background()
	db := peertest.PostgresPool(t)
	for _, tc := range []struct {
		cfg  RelayConfig
		want string
	}{
		{RelayConfig{Client: nopEnqueuer{}}, "DB is required"},
		{RelayConfig{DB: db}, "Client is required"},
	} {
		if _, err := NewRelay(ctx, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
	defaults := RelayConfig{BatchSize: DefaultBatchSize, Concurrency: DefaultConcurrency, Claimers: DefaultClaimers,
		PollInterval: DefaultPollInterval, MaxBackoff: DefaultMaxBackoff}
	for _, tc := range []struct {
		name string
		in   RelayConfig
		want RelayConfig
	}{
		{"zero", RelayConfig{}, defaults},
		{"negative", RelayConfig{BatchSize: -1, Concurrency: -1, Claimers: -1, PollInterval: -time.Second, MaxBackoff: -1}, defaults},
		{"set", RelayConfig{BatchSize: 7, Concurrency: 3, Claimers: 2, PollInterval: time.Second, MaxBackoff: time.Minute},
			RelayConfig{BatchSize: 7, Concurrency: 3, Claimers: 2, PollInterval: time.Second, MaxBackoff: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.DB, tc.in.Client = db, nopEnqueuer{}
			r, err := NewRelay(ctx, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := r.cfg
			if got.BatchSize != tc.want.BatchSize || got.Concurrency != tc.want.Concurrency || got.Claimers != tc.want.Claimers ||
				got.PollInterval != tc.want.PollInterval || got.MaxBackoff != tc.want.MaxBackoff {
				t.Errorf("got batch %d, concurrency %d, claimers %d, poll %v, backoff %v; want %d, %d, %d, %v, %v",
					got.BatchSize, got.Concurrency, got.Claimers, got.PollInterval, got.MaxBackoff,
					tc.want.BatchSize, tc.want.Concurrency, tc.want.Claimers, tc.want.PollInterval, tc.want.MaxBackoff)
			}
			if len(r.wake) != got.Claimers {
				t.Errorf("got %d wake channels, want one per claimer (%d)", len(r.wake), got.Claimers)
			}
		})
	}
}
