package tasks

import "testing"

func TestEnqueuedQueueRecognisesOnlyAsynqEnqueueAndSchedule(t *testing.T) {
	cases := []struct {
		name           string
		args           []any
		wantQ, wantMsg string
	}{
		{"enqueue", []any{"evalsha", "sha", 2, "asynq:{low}:t:audit_log_created:audit-1", "asynq:{low}:pending", "msg", "id", int64(1)}, "low", "p"},
		{"enqueue after NOSCRIPT", []any{"eval", "src", 2, "asynq:{critical}:t:x", "asynq:{critical}:pending", "msg", "x", int64(1)}, "critical", "p"},
		{"schedule", []any{"evalsha", "sha", 2, "asynq:{default}:t:x", "asynq:{default}:scheduled", "msg", int64(1764460800), "x"}, "default", "s1764460800"},
		{"schedule, due not a number", []any{"evalsha", "sha", 2, "asynq:{default}:t:x", "asynq:{default}:scheduled", "msg", "soon", "x"}, "", ""},
		{"task of another queue", []any{"evalsha", "sha", 2, "asynq:{a}:t:x", "asynq:{b}:pending", "msg", "x", int64(1)}, "", ""},
		{"forward", []any{"evalsha", "sha", 2, "asynq:{low}:retry", "asynq:{low}:pending", int64(1), "asynq:{low}:t:", int64(2), "g"}, "", ""},
		{"dequeue", []any{"evalsha", "sha", 4, "asynq:{low}:pending", "asynq:{low}:paused", "asynq:{low}:active", "asynq:{low}:lease", int64(1), "p"}, "", ""},
		{"unique enqueue (3 keys, not used by Client)", []any{"evalsha", "sha", 3, "asynq:{low}:unique:k", "asynq:{low}:t:x", "asynq:{low}:pending", "x", 60, "msg", int64(1)}, "", ""},
		{"plain command", []any{"lpush", "asynq:{low}:pending", "x", "y", "z", "w", "v"}, "", ""},
	}
	for _, c := range cases {
		q, msg, ok := enqueuedQueue(c.args)
		if q != c.wantQ || msg != c.wantMsg || ok != (c.wantQ != "") {
			t.Errorf("%s: got (%q, %q, %v), want (%q, %q)", c.name, q, msg, ok, c.wantQ, c.wantMsg)
		}
	}
}
