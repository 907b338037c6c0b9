package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// TestDevRedisAddrMustBeLoopback: the embedded store has no password, so
// -dev refuses to put it anywhere a neighbour could reach.
func TestDevRedisAddrMustBeLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:6379", "example.com:6379", "10.1.2.3:0", "not-an-address"} {
		t.Run(addr, func(t *testing.T) {
			var out, errOut peertest.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, []string{"-dev", "-dev-redis-addr", addr, "-monitor-addr", "127.0.0.1:0"}, envOf(nil), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), "-dev-redis-addr") || !strings.Contains(err.Error(), "loopback") {
				t.Fatalf("-dev-redis-addr %s: got %v, want an error naming -dev-redis-addr and loopback", addr, err)
			}
			if strings.Contains(out.String(), "REDIS_URL") {
				t.Errorf("-dev-redis-addr %s: the store started: %s", addr, out.String())
			}
		})
	}
}

// TestWeakSecretsAreRefusedAtStartup: the API keys the worker reads are
// refused when blank, padded or shorter than 16 bytes, naming the variable
// and never repeating the value.
func TestWeakSecretsAreRefusedAtStartup(t *testing.T) {
	for _, c := range []struct{ variable, value string }{
		{"STRIPE_SECRET_KEY", "sk_"},
		{"STRIPE_SECRET_KEY", "sk_test_x"},
		{"STRIPE_SECRET_KEY", " sk_test_0123456789abcdef"},
		{"STRIPE_SECRET_KEY", strings.Repeat(" ", 30)},
		{"RESEND_API_KEY", "x"},
		{"RESEND_API_KEY", strings.Repeat("\t", 20)},
		{"RESEND_API_KEY", "re_0123456789abcdef\n"},
	} {
		t.Run(c.variable+"="+strings.TrimSpace(c.value), func(t *testing.T) {
			env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "MAIL_FROM": "ops@example.com", "WEBHOOK_ENDPOINTS_FILE": "/nonexistent/partners.json",
				"STRIPE_SECRET_KEY": "sk_test_0123456789abcdef", "SMTP_URL": "smtp://127.0.0.1:1?tls=none"}
			env[c.variable] = c.value
			var out, errOut peertest.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, nil, envOf(env), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), c.variable+":") && !strings.Contains(err.Error(), c.variable+" ") {
				t.Fatalf("got %v, want a start-up error about %s", err, c.variable)
			}
			if v := strings.TrimSpace(c.value); len(v) > 3 && strings.Contains(err.Error(), v) {
				t.Errorf("got %q, want the value left out", err)
			}
		})
	}
}
