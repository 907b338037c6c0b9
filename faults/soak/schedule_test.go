package soak_test

import (
	"slices"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/faults/soak"
)

// TestPlanReplaysItsSeed checks that a seed gives one schedule, another
// seed another, that a run long enough has every kind of fault, and that
// the faults whose effects take soak.LeaseDrain to settle leave the drain
// that time (or come in the first 15 s of a short run).
func TestPlanReplaysItsSeed(t *testing.T) {
	for _, d := range []time.Duration{40 * time.Second, 30 * time.Minute} {
		a, b := soak.Plan(42, d, 3), soak.Plan(42, d, 3)
		if !slices.Equal(a, b) {
			t.Errorf("%s: seed 42 gave two schedules:\n%v\n%v", d, a, b)
		}
		if c := soak.Plan(43, d, 3); slices.Equal(a, c) {
			t.Errorf("%s: seeds 42 and 43 gave the same schedule", d)
		}
		for seed := range uint64(50) {
			plan := soak.Plan(seed, d, 3)
			counts := soak.Counts(plan)
			for _, k := range soak.Kinds {
				if counts[k] == 0 {
					t.Errorf("%s, seed %d: got no %s fault, want every kind: %v", d, seed, k, counts)
				}
			}
			last := max(d-soak.LeaseDrain, 15*time.Second)
			for _, f := range plan {
				if (f.Kind == soak.SIGKILL || f.Kind == soak.Failover) && f.At > last {
					t.Errorf("%s, seed %d: %s at %s, want at most %s", d, seed, f.Kind, f.At, last)
				}
				if f.At >= d {
					t.Errorf("%s, seed %d: fault %s starts after the run", d, seed, f)
				}
				if (f.Kind == soak.SIGKILL || f.Kind == soak.SIGTERM) && (f.Target < 0 || f.Target >= 3) {
					t.Errorf("%s, seed %d: %s of worker %d, want 0..2", d, seed, f.Kind, f.Target)
				}
			}
		}
	}
}

// TestKeyPattern checks that keys differing only by IDs fall into one
// group and that Growth reports only the groups that grew past the slack.
func TestKeyPattern(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"escrowjobs:flow:{release:soak-12}", "escrowjobs:flow:{release:<escrow>}"},
		{"asynq:{critical}:t:stripe_capture_payment:capture-pi_soak77", "asynq:{critical}:t:stripe_capture_payment:capture-<pi>"},
		{"asynq:{default}:t:send_dispute_email:dispute-dsp-soak-3-resolved-0123456789abcdef0123", "asynq:{default}:t:send_dispute_email:dispute-<escrow>-resolved-<hex>"},
		{"asynq:{default}:t:webhook_escrow_status_changed:event-ev-0123456789abcdef", "asynq:{default}:t:webhook_escrow_status_changed:event-<event>"},
		{"asynq:{low}:processed:2026-12-03", "asynq:{low}:processed:<date>"},
		{"asynq:servers:{host:1234:0f8fad5b-d9cb-469f-a165-70867728950e}", "asynq:servers:{host:<n>:<uuid>}"},
	} {
		if got := soak.KeyPattern(tc.key); got != tc.want {
			t.Errorf("KeyPattern(%q): got %q, want %q", tc.key, got, tc.want)
		}
	}
	got := soak.Growth(map[string]int{"a": 10, "b": 2}, map[string]int{"a": 40, "b": 4, "c": 1, "d": 9}, 3)
	want := map[string][2]int{"a": {10, 40}, "d": {0, 9}}
	if len(got) != len(want) || got["a"] != want["a"] || got["d"] != want["d"] {
		t.Errorf("Growth: got %v, want %v", got, want)
	}
}
