package tasks_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/tasks"
)

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

func TestTypesAreTheNineWithTheirQueues(t *testing.T) {
	want := map[string]string{
		"send_release_email": "default", "send_refund_email": "default", "send_dispute_email": "default",
		"send_payment_confirmed_email": "default", "stripe_capture_payment": "critical", "stripe_refund_payment": "critical",
		"webhook_escrow_status_changed": "default", "notify_dispute_resolved": "default", "audit_log_created": "low",
	}
	got := map[string]string{}
	for _, typ := range tasks.Types() {
		got[typ.Name] = typ.Queue
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

// A job stored under the header's earlier name keeps its ready time; the
// current name wins when both are there.
func TestReadyAtReadsBothNames(t *testing.T) {
	at := time.Unix(0, 1764460800123456789).UTC()
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    time.Time
	}{
		{"current", map[string]string{tasks.HeaderReadyAt: "1764460800123456789"}, at},
		{"before", map[string]string{tasks.HeaderReadyAtV1: "1764460800123456789"}, at},
		{"both", map[string]string{tasks.HeaderReadyAt: "1764460800123456789", tasks.HeaderReadyAtV1: "1"}, at},
		{"none", map[string]string{"other": "1"}, time.Time{}},
	} {
		if got := tasks.ReadyAt(tc.headers); !got.Equal(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	h := map[string]string{}
	tasks.SetReadyAt(h, at)
	if _, old := h[tasks.HeaderReadyAtV1]; old || tasks.ReadyAt(h) != at {
		t.Errorf("SetReadyAt: got %q, want only %s = %d", h, tasks.HeaderReadyAt, at.UnixNano())
	}
}
