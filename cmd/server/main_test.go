package main

import (
	"context"
	"github.com/escrowjobs/escrowjobs/internal/testenv"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestStartupErrorsNameTheVariable(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing set", map[string]string{}, []string{"REDIS_URL", "SMTP_URL or RESEND_API_KEY", "STRIPE_SECRET_KEY", "WEBHOOK_ENDPOINTS_FILE"}},
		{"mail without sender", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "SMTP_URL": "smtp://x:25", "STRIPE_SECRET_KEY": "sk_test_x", "WEBHOOK_ENDPOINTS_FILE": "/nope"}, []string{"MAIL_FROM"}},
		{"bad numbers", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "WORKER_CONCURRENCY": "lots", "WORKER_FETCH_LOOPS": "0", "WORKER_SHUTDOWN_TIMEOUT": "-1s", "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "maybe", "REDIS_WAIT_REPLICAS": "all"},
			[]string{"WORKER_CONCURRENCY", "WORKER_FETCH_LOOPS", "WORKER_SHUTDOWN_TIMEOUT", "WEBHOOK_ALLOW_PRIVATE_NETWORKS", "REDIS_WAIT_REPLICAS"}},
		{"missing registry file", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "SMTP_URL": "smtp://127.0.0.1:1?tls=none", "MAIL_FROM": "ops@example.com",
			"STRIPE_SECRET_KEY": "sk_test_secret123", "WEBHOOK_ENDPOINTS_FILE": "/nonexistent/partners.json", "DEAD_LETTER_PATH": "/tmp/escrowjobs-test-dl.jsonl", "AUDIT_LOG_PATH": "/tmp/escrowjobs-test-audit.jsonl"},
			[]string{"WEBHOOK_ENDPOINTS_FILE"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut testenv.Buffer
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

func TestDevModeProcessesJobsWithNoConfiguration(t *testing.T) {
	var out, errOut testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dev", "-dev-redis-addr", "127.0.0.1:0", "-monitor-addr", "127.0.0.1:0"}, envOf(nil), &out, &errOut)
	}()

	var url string
	re := regexp.MustCompile(`export REDIS_URL=(\S+)`)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && url == ""; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		cancel()
		t.Fatalf("no REDIS_URL printed; stdout %q stderr %q", out.String(), errOut.String())
	}
	for _, want := range []string{"NOTHING SURVIVES A RESTART"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q: %q", want, out.String())
		}
	}
	mon := regexp.MustCompile(`monitor: (http://\S+/monitor/)`).FindStringSubmatch(out.String())
	if mon == nil {
		t.Fatalf("no monitor URL printed: %q", out.String())
	}
	resp, err := http.Get(mon[1])
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: got %v %v, want 200", mon[1], resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	c := tasks.NewClient(opt)
	defer c.Close()
	in := tasks.NewInspector(opt)
	defer in.Close()
	task, _ := tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: "esc-dev", RecipientEmail: "dev.user@example.com", Amount: 1, Currency: "USD"})
	id, err := c.Enqueue(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	var state string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && state != "completed"; time.Sleep(50 * time.Millisecond) {
		j, _ := in.Status(id)
		state = j.State
	}
	if state != "completed" {
		t.Errorf("got state %q, want completed", state)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v, want nil after cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	logs := errOut.String()
	if !strings.Contains(logs, "email not sent (dev mode)") || !strings.Contains(logs, "d***@example.com") {
		t.Errorf("log lacks the masked dev e-mail line: %s", logs)
	}
	if strings.Contains(logs, "dev.user@example.com") {
		t.Errorf("log contains the raw address")
	}
}
