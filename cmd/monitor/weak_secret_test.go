package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// TestWeakSecretsAreRefusedAtStartup: a blank, padded or one-character
// secret stops the monitor with an error naming the variable, also in
// loopback mode, where a blank token would otherwise open the API.
func TestWeakSecretsAreRefusedAtStartup(t *testing.T) {
	base := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "MONITOR_USERNAME": "ops", "MONITOR_PASSWORD": testPassword, "JOB_PROCESSOR_SECRET_TOKEN": testToken}
	for _, c := range []struct {
		name, variable, value string
		args                  []string
	}{
		{"blank token", "JOB_PROCESSOR_SECRET_TOKEN", strings.Repeat(" ", 40), nil},
		{"padded token", "JOB_PROCESSOR_SECRET_TOKEN", testToken + "\n", nil},
		{"one-character token", "JOB_PROCESSOR_SECRET_TOKEN", "x", nil},
		{"blank token in loopback mode", "JOB_PROCESSOR_SECRET_TOKEN", "   ", []string{"-loopback-no-auth"}},
		{"blank password", "MONITOR_PASSWORD", strings.Repeat(" ", 16), nil},
		{"padded password", "MONITOR_PASSWORD", " " + testPassword, nil},
		{"one-character password", "MONITOR_PASSWORD", "x", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			env[c.variable] = c.value
			var out, errOut peertest.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, append(c.args, "-addr", "127.0.0.1:0"), envOf(env), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), c.variable) {
				t.Fatalf("got %v, want a start-up error naming %s", err, c.variable)
			}
			if strings.Contains(out.String(), "listening") {
				t.Errorf("it listened despite the error: %q", out.String())
			}
		})
	}
}
