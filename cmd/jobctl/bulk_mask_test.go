package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/repair"
)

// The reasons a bulk requeue gives for the dead letters it could not
// requeue are masked, in text and in JSON: no address, no Redis password
// (of a URL, or of the environment), no URL query.
func TestBulkRequeueFailuresAreMasked(t *testing.T) {
	const why = `requeue: dial redis://default:pw_hunter22@redis.internal:6379/0 for jane.doe@example.com: ` +
		`Post "https://hooks.acme.test/in?token=tok_s3cret": refused; AUTH env_s3cretpw failed`
	env := map[string]string{"REDIS_PASSWORD": "env_s3cretpw"}
	for _, asJSON := range []bool{false, true} {
		var out bytes.Buffer
		c := &cli{ctx: context.Background(), getenv: func(k string) string { return env[k] }, stdout: &out, stderr: &out, json: asJSON}
		b := repair.Bulk{Matched: 2, Requeued: 1, IDs: []string{"send_release_email:ok"}, Failed: map[string]string{"send_release_email:bad": why}}
		if err := c.printBulk(b, false); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		for _, secret := range []string{"pw_hunter22", "jane.doe", "tok_s3cret", "env_s3cretpw"} {
			if strings.Contains(got, secret) {
				t.Errorf("json %v: got %q, want no %q", asJSON, got, secret)
			}
		}
		if want := "send_release_email:bad"; !strings.Contains(got, want) {
			t.Errorf("json %v: got %q, want it to name %s", asJSON, got, want)
		}
	}
}
