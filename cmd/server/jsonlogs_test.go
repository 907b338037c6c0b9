package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// TestEveryOutputLineIsJSON runs the real binary against a Redis that goes
// away: go-redis's and asynq's own complaints, like ours, must be JSON
// lines (no "redis: 2026/11/30 … pool.go:770: …" text lines).
func TestEveryOutputLineIsJSON(t *testing.T) {
	t.Parallel()
	bin := peertest.Binary(t, "./cmd/server")
	r := peertest.StartRedis(t)
	dir := t.TempDir()
	partners := filepath.Join(dir, "partners.json")
	if err := os.WriteFile(partners, []byte(`{"partners": {"p1": {"url": "https://example.com/hook", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := peertest.Start(t, bin, []string{
		"REDIS_URL=" + r.URL(), "SMTP_URL=smtp://127.0.0.1:1?tls=none", "MAIL_FROM=ops@example.com",
		"STRIPE_SECRET_KEY=sk_test_0123456789abcdef", "WEBHOOK_ENDPOINTS_FILE=" + partners,
		"DEAD_LETTER_PATH=" + filepath.Join(dir, "dl.jsonl"), "AUDIT_LOG_PATH=" + filepath.Join(dir, "audit.jsonl"),
		"WORKER_SHUTDOWN_TIMEOUT=2s",
	})
	if !p.WaitOutput("worker started", 20*time.Second) {
		t.Fatalf("the worker did not start:\n%s", p.Output())
	}
	r.Kill()
	// go-redis logs failed dials of its pool; asynq logs its own errors.
	if !p.WaitOutput(`connection pool: failed to dial`, 40*time.Second) {
		t.Fatalf("no line from go-redis's pool about the failed dials:\n%s", p.Output())
	}
	time.Sleep(2 * time.Second) // let more lines of every source come
	p.Signal(syscall.SIGTERM)
	if _, exited := p.Wait(20 * time.Second); !exited {
		t.Fatalf("no exit after SIGTERM:\n%s", p.Output())
	}
	lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	fromRedis := 0
	for i, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("line %d of %d is not JSON: %q", i+1, len(lines), l)
			continue
		}
		if rec["component"] == "redis" {
			fromRedis++
		}
	}
	if fromRedis == 0 {
		t.Errorf("no line from go-redis's logger (component redis); want its complaints as JSON:\n%s", p.Output())
	}
	t.Logf("%d lines, all JSON, %d from go-redis", len(lines), fromRedis)
}
