package main

import (
	"strings"
	"testing"
)

func TestMetricsAddr(t *testing.T) {
	tests := []struct {
		value, want, wantErr string
	}{
		{"", DefaultMetricsAddr, ""},
		{"off", "", ""},
		{"OFF", "", ""},
		{"127.0.0.1:0", "127.0.0.1:0", ""},
		{":9091", ":9091", ""},
		{"9091", "", "METRICS_ADDR"},
		{"localhost", "", "METRICS_ADDR"},
	}
	for _, tt := range tests {
		got, err := metricsAddr(func(k string) string {
			if k == "METRICS_ADDR" {
				return tt.value
			}
			return ""
		})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("METRICS_ADDR=%q: got error %v, want one naming %s", tt.value, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("METRICS_ADDR=%q: got %q, %v; want %q", tt.value, got, err, tt.want)
		}
	}
}

// WORKER_DONE_MARKERS_PATH: unset is a file next to the dead-letter file,
// "off" keeps the markers in memory only, anything else is the path.
func TestDoneMarkersPath(t *testing.T) {
	for _, tc := range []struct {
		deadLetters, value, want string
	}{
		{"/var/lib/escrowjobs/dead-letters.jsonl", "", "/var/lib/escrowjobs/done-markers.jsonl"},
		{"", "", "done-markers.jsonl"},
		{"/var/lib/escrowjobs/dead-letters.jsonl", "off", ""},
		{"/var/lib/escrowjobs/dead-letters.jsonl", "/data/markers.jsonl", "/data/markers.jsonl"},
	} {
		env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "SMTP_URL": "smtp://x:25", "MAIL_FROM": "ops@example.com",
			"STRIPE_SECRET_KEY": "sk_test_secret123", "WEBHOOK_ENDPOINTS_FILE": "/nope", "DEAD_LETTER_PATH": tc.deadLetters, "WORKER_DONE_MARKERS_PATH": tc.value}
		c, err := loadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if c.doneMarkersPath != tc.want {
			t.Errorf("DEAD_LETTER_PATH %q, WORKER_DONE_MARKERS_PATH %q: got %q, want %q", tc.deadLetters, tc.value, c.doneMarkersPath, tc.want)
		}
	}
}
