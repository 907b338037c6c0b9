package tasks_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

func TestRetryDelay(t *testing.T) {
	plain := errors.New("boom")
	cases := []struct {
		n    int
		err  error
		want time.Duration
	}{
		{0, plain, 2 * time.Second},
		{1, plain, 4 * time.Second},
		{2, plain, 8 * time.Second},
		{0, tasks.RetryAfter(30*time.Second, plain), 30 * time.Second},
		{2, tasks.RetryAfter(time.Second, plain), 8 * time.Second},
		{1, fmt.Errorf("wrapped: %w", tasks.RetryAfter(10*time.Second, plain)), 10 * time.Second},
	}
	for _, c := range cases {
		if got := tasks.RetryDelay(c.n, c.err); got != c.want {
			t.Errorf("RetryDelay(%d, %v): got %v, want %v", c.n, c.err, got, c.want)
		}
	}
}

func TestIsPermanent(t *testing.T) {
	if !tasks.IsPermanent(fmt.Errorf("x: %w", asynq.SkipRetry)) {
		t.Error("got false for a SkipRetry error, want true")
	}
	if tasks.IsPermanent(errors.New("x")) {
		t.Error("got true for a plain error, want false")
	}
}

func TestFromJSONErrorsNameTheField(t *testing.T) {
	cases := []struct {
		typ, body, want string
	}{
		{"send_release_email", `{"transactionId":"t","recipientEmail":"a@example.com","amount":"1","currency":"USD"}`, "amount: must be a JSON number"},
		{"send_release_email", `{"transactionId":"t","recipientEmail":"a@example.com","amount":1,"currency":"USD","bcc":"x"}`, "bcc: is not a field"},
		{"send_release_email", `not json`, "payload: is not valid JSON"},
		{"send_release_email", ``, "payload: is empty"},
		{"send_release_email", `{"transactionId":"t","recipientEmail":"a@example.com","amount":1,"currency":"USD"} {}`, "payload: must be a single JSON object"},
		{"audit_log_created", `[]`, "payload: must be a JSON"},
		{"no_such_type", `{}`, "unknown job type"},
	}
	for _, c := range cases {
		_, err := tasks.FromJSON(c.typ, []byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("FromJSON(%s, %s): got %v, want it to contain %q", c.typ, c.body, err, c.want)
		}
	}
}

func TestKindsAreTheNineTypesWithTheirQueues(t *testing.T) {
	want := map[string]string{
		"send_release_email": "default", "send_refund_email": "default", "send_dispute_email": "default",
		"send_payment_confirmed_email": "default", "stripe_capture_payment": "critical", "stripe_refund_payment": "critical",
		"webhook_escrow_status_changed": "default", "notify_dispute_resolved": "default", "audit_log_created": "low",
	}
	got := map[string]string{}
	for _, k := range tasks.Kinds() {
		got[k.Type] = k.Queue
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestRedisFromEnvNamesTheVariable(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "REDIS_URL is not set"},
		{map[string]string{"REDIS_URL": "http://x"}, "REDIS_URL"},
		{map[string]string{"REDIS_URL": "redis://:hunter2@127.0.0.1:1/abc"}, "REDIS_URL"},
		{map[string]string{"REDIS_URL": "redis://:hunter2@[bad"}, "REDIS_URL"},
		{map[string]string{"REDIS_CLUSTER_ADDRS": "a,b"}, "REDIS_CLUSTER_ADDRS"},
	}
	for _, c := range cases {
		_, err := tasks.RedisFromEnv(func(k string) string { return c.env[k] })
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("env %v: got %v, want an error naming %s without the password", c.env, err, c.want)
		}
	}
	for _, u := range []string{"redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6380", "redis-sentinel://127.0.0.1:26379?master=mymaster"} {
		if _, err := tasks.RedisFromEnv(func(k string) string { return map[string]string{"REDIS_URL": u}[k] }); err != nil {
			t.Errorf("REDIS_URL=%s: got %v, want nil", u, err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"30", 30 * time.Second, true},
		{" 5 ", 5 * time.Second, true},
		{"Sun, 29 Nov 2026 10:01:00 GMT", time.Minute, true},
		{"999999999", tasks.MaxRetryAfter, true},
		{"0", 0, false},
		{"-3", 0, false},
		{"Sun, 29 Nov 2026 09:00:00 GMT", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		if got, ok := tasks.ParseRetryAfter(c.v, now); got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q): got (%v, %v), want (%v, %v)", c.v, got, ok, c.want, c.ok)
		}
	}
}
