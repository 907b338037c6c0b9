package asynqkey_test

import (
	"slices"
	"testing"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
)

func TestQueueOfReadsBackTheNames(t *testing.T) {
	for _, tc := range []struct {
		key, suffix, want string
		ok                bool
	}{
		{asynqkey.Pending("critical"), "pending", "critical", true},
		{asynqkey.Retry("low"), "retry", "low", true},
		{asynqkey.Scheduled("a:b}c"), "scheduled", "a:b}c", true},
		{asynqkey.Pending("critical"), "retry", "", false},
		{"asynq:{}:pending", "pending", "", false},
		{"other:{q}:pending", "pending", "", false},
		{asynqkey.Task("q", "id"), "pending", "", false},
	} {
		got, ok := asynqkey.QueueOf(tc.key, tc.suffix)
		if got != tc.want || ok != tc.ok {
			t.Errorf("QueueOf(%q, %q): got %q, %v; want %q, %v", tc.key, tc.suffix, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseTask(t *testing.T) {
	for _, tc := range []struct {
		key, q, id string
		ok         bool
	}{
		{asynqkey.Task("critical", "capture-pi_1"), "critical", "capture-pi_1", true},
		{asynqkey.Task("q", "a}:t:b"), "q", "a}:t:b", true},
		{asynqkey.Pending("q"), "", "", false},
		{"asynq:{}:t:x", "", "", false},
		{"asynq:{q}:t:", "", "", false},
	} {
		q, id, ok := asynqkey.ParseTask(tc.key)
		if q != tc.q || id != tc.id || ok != tc.ok {
			t.Errorf("ParseTask(%q): got %q, %q, %v; want %q, %q, %v", tc.key, q, id, ok, tc.q, tc.id, tc.ok)
		}
	}
}

func TestScriptSplitsKeysAndArguments(t *testing.T) {
	for _, tc := range []struct {
		name           string
		args           []any
		nkeys, minArgs int
		keys, argv     []any
		ok             bool
	}{
		{"evalsha", []any{"evalsha", "sha", 2, "k1", "k2", "a1", int64(2)}, 2, 2, []any{"k1", "k2"}, []any{"a1", int64(2)}, true},
		{"eval after NOSCRIPT", []any{"eval", "src", 2, "k1", "k2", "a1", "a2", "a3"}, 2, 2, []any{"k1", "k2"}, []any{"a1", "a2", "a3"}, true},
		{"no arguments wanted", []any{"evalsha", "sha", 4, "k1", "k2", "k3", "k4"}, 4, 0, []any{"k1", "k2", "k3", "k4"}, []any{}, true},
		{"other number of keys", []any{"evalsha", "sha", 3, "k1", "k2", "k3", "a1", "a2"}, 2, 2, nil, nil, false},
		{"too few arguments", []any{"evalsha", "sha", 2, "k1", "k2", "a1"}, 2, 2, nil, nil, false},
		{"not a script", []any{"lpush", "sha", 2, "k1", "k2", "a1", "a2"}, 2, 2, nil, nil, false},
		{"number of keys not an int", []any{"evalsha", "sha", "2", "k1", "k2", "a1", "a2"}, 2, 2, nil, nil, false},
		{"empty", nil, 0, 0, nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, argv, ok := asynqkey.Script(tc.args, tc.nkeys, tc.minArgs)
			if ok != tc.ok || !slices.Equal(keys, tc.keys) || !slices.Equal(argv, tc.argv) {
				t.Errorf("got %v, %v, %v; want %v, %v, %v", keys, argv, ok, tc.keys, tc.argv, tc.ok)
			}
		})
	}
}

// TestScriptAllocatesNothing: the redis hooks call Script on every
// command, so it must not add garbage to each.
func TestScriptAllocatesNothing(t *testing.T) {
	args := []any{"evalsha", "sha", 2, "k1", "k2", "a1", int64(2)}
	if n := testing.AllocsPerRun(100, func() { asynqkey.Script(args, 2, 2) }); n != 0 {
		t.Errorf("got %v allocations per call, want 0", n)
	}
}
