package asynqkey_test

import (
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
