package observe_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/peertest"
)

const (
	stripeKey  = "sk_test_observeSecretKeyDoNotLog"
	webhookKey = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	partner    = "acme"
)

// server is the real cmd/server binary.
type server struct {
	*peertest.Process
	// URL is the base URL of its /healthz, /readyz and /metrics.
	URL string
}

var metricsLine = regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`)

// startServer runs cmd/server against redisURL with METRICS_ADDR
// 127.0.0.1:0, Stripe at stripeURL, the webhook partner at hookURL, and
// extra environment; it finds the metrics address in the log.
func startServer(t *testing.T, redisURL, stripeURL, hookURL string, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	registry := filepath.Join(dir, "partners.json")
	reg, _ := json.Marshal(map[string]any{"partners": map[string]any{partner: map[string]string{"url": hookURL, "secret": webhookKey}}})
	if err := os.WriteFile(registry, reg, 0o600); err != nil {
		t.Fatal(err)
	}
	env := append([]string{
		"REDIS_URL=" + redisURL, "LOG_LEVEL=info", "WORKER_CONCURRENCY=8", "METRICS_ADDR=127.0.0.1:0",
		"SMTP_URL=smtp://127.0.0.1:1?tls=none", "MAIL_FROM=escrow@example.com",
		"STRIPE_SECRET_KEY=" + stripeKey, "STRIPE_API_BASE=" + stripeURL,
		"WEBHOOK_ENDPOINTS_FILE=" + registry, "WEBHOOK_ALLOW_PRIVATE_NETWORKS=true",
		"DEAD_LETTER_PATH=" + filepath.Join(dir, "dead-letters.jsonl"), "AUDIT_LOG_PATH=" + filepath.Join(dir, "audit.jsonl"),
	}, extra...)
	p := peertest.Start(t, peertest.Binary(t, "./cmd/server"), env, "-no-scheduler")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", p.Output())
		}
	})
	if !p.WaitOutput(`"worker started"`, 60*time.Second) {
		t.Fatalf("server did not start:\n%s", p.Output())
	}
	m := metricsLine.FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("no \"metrics listening\" line with the address in the log:\n%s", p.Output())
	}
	return &server{Process: p, URL: "http://" + m[1]}
}

// status GETs url and returns the status code (0 when it cannot connect).
func status(url string) int {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// TestReadyzFollowsRedis: the server's /readyz answers 200 while Redis
// answers and the fetch loops run, 503 once Redis dies (while /healthz
// stays 200: the process is alive), and 200 again when Redis is back.
func TestReadyzFollowsRedis(t *testing.T) {
	t.Parallel()
	redis := peertest.StartRedis(t)
	rc := escrowtest.StartReceiver(t, webhookKey)
	srv := startServer(t, redis.URL(), "http://127.0.0.1:1", rc.URL+"/hooks")

	steps := []struct {
		what        string
		do          func()
		wantReady   int
		wantHealthz int
	}{
		{"running", func() {}, http.StatusOK, http.StatusOK},
		{"Redis killed", redis.Kill, http.StatusServiceUnavailable, http.StatusOK},
		{"Redis restarted", redis.Start, http.StatusOK, http.StatusOK},
	}
	for _, s := range steps {
		s.do()
		var got int
		escrowtest.Eventually(t, s.what+": /readyz", 30*time.Second, func() bool {
			got = status(srv.URL + "/readyz")
			return got == s.wantReady
		})
		if got != s.wantReady {
			t.Fatalf("%s: /readyz got %d, want %d", s.what, got, s.wantReady)
		}
		if got := status(srv.URL + "/healthz"); got != s.wantHealthz {
			t.Errorf("%s: /healthz got %d, want %d", s.what, got, s.wantHealthz)
		}
	}
}
