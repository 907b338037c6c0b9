package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/peertest"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// runUntilCleanup runs the server (run) with args and env in the
// background until the test ends; the cleanup cancels it and wants it to
// return nil within wait.
func runUntilCleanup(t testing.TB, args []string, env func(string) string, stdout, stderr io.Writer, wait time.Duration) {
	t.Helper()
	escrowtest.Start(t, "run", wait, func(ctx context.Context) error { return run(ctx, args, env, stdout, stderr) })
}

func TestStartupErrorsNameTheVariable(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing set", map[string]string{}, []string{"REDIS_URL", "SMTP_URL or RESEND_API_KEY", "STRIPE_SECRET_KEY", "WEBHOOK_ENDPOINTS_FILE"}},
		{"mail without sender", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "SMTP_URL": "smtp://x:25", "STRIPE_SECRET_KEY": "sk_test_x", "WEBHOOK_ENDPOINTS_FILE": "/nope"}, []string{"MAIL_FROM"}},
		{"bad numbers", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "WORKER_CONCURRENCY": "lots", "WORKER_FETCH_LOOPS": "0", "WORKER_SHUTDOWN_TIMEOUT": "-1s", "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "maybe",
			"WORKER_FALLBACK_POLL": "soon", "WORKER_DISABLE_WAKE": "nope", "REDIS_WAIT_REPLICAS": "all"},
			[]string{"WORKER_CONCURRENCY", "WORKER_FETCH_LOOPS", "WORKER_SHUTDOWN_TIMEOUT", "WEBHOOK_ALLOW_PRIVATE_NETWORKS", "WORKER_FALLBACK_POLL", "WORKER_DISABLE_WAKE", "REDIS_WAIT_REPLICAS"}},
		{"bad partner delivery settings", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "WEBHOOK_REDELIVERY_SCHEDULE": "5m,soon", "WEBHOOK_BREAKER_FAILURES": "0",
			"WEBHOOK_BREAKER_PROBE": "never", "WEBHOOK_TIMEOUT": "-1s", "WEBHOOK_REGISTRY_POLL": "x", "WATCHDOG_INTERVAL": "10ms"},
			[]string{`WEBHOOK_REDELIVERY_SCHEDULE="5m,soon": step 2 "soon"`, "WEBHOOK_BREAKER_FAILURES", "WEBHOOK_BREAKER_PROBE", "WEBHOOK_TIMEOUT", "WEBHOOK_REGISTRY_POLL", "WATCHDOG_INTERVAL"}},
		{"missing registry file", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "SMTP_URL": "smtp://127.0.0.1:1?tls=none", "MAIL_FROM": "ops@example.com",
			"STRIPE_SECRET_KEY": "sk_test_secret123", "WEBHOOK_ENDPOINTS_FILE": "/nonexistent/partners.json", "DEAD_LETTER_PATH": "/tmp/escrowjobs-test-dl.jsonl", "AUDIT_LOG_PATH": "/tmp/escrowjobs-test-audit.jsonl"},
			[]string{"WEBHOOK_ENDPOINTS_FILE"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut peertest.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, nil, envOf(c.env), &out, &errOut)
			if err == nil {
				t.Fatal("got nil, want a start-up error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to name %s", err, w)
				}
			}
			if strings.Contains(err.Error()+errOut.String(), "sk_test_secret123") {
				t.Errorf("the Stripe key leaked: %q", err)
			}
		})
	}
}
