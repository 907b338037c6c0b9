package monitor_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
)

func TestHealthz(t *testing.T) {
	rs := peertest.StartRedis(t)
	opt, err := asynq.ParseRedisURI(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	f := setupOn(t, opt)
	a := f.do(t, request{method: "GET", path: "/healthz"})
	if a.status != http.StatusOK || strings.TrimSpace(string(a.body)) != `{"status":"ok"}` {
		t.Errorf("got %d %s, want 200 {\"status\":\"ok\"}", a.status, a.body)
	}
	rs.Kill()
	start := time.Now()
	a = f.do(t, request{method: "GET", path: "/healthz"})
	if a.status != http.StatusServiceUnavailable {
		t.Errorf("Redis down: got %d %s, want 503", a.status, a.body)
	}
	var h struct {
		Status string `json:"status"`
	}
	a.json(t, &h)
	if h.Status == "ok" || a.apiError(t).Error.Code != "unavailable" {
		t.Errorf("Redis down: got %s, want a status other than ok and the error shape", a.body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Redis down: the answer took %s, want under 3 s", d)
	}
}

func TestMetrics(t *testing.T) {
	f := setup(t)
	f.enqueue(t, "esc-600")
	a := f.do(t, request{method: "GET", path: "/metrics"})
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200", a.status)
	}
	for _, want := range []string{
		`asynq_tasks_enqueued_total{queue="default",state="pending"} 1`,
		`asynq_queue_size{queue="default"} 1`,
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(string(a.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("got Content-Type %q, want Prometheus text", ct)
	}
}
