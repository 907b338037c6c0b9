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
