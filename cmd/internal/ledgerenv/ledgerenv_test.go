package ledgerenv

import (
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{"defaults", nil, Config{Path: DefaultPath, Retention: 90 * 24 * time.Hour}, ""},
		{"database from the audit URL", map[string]string{"AUDIT_DATABASE_URL": "postgres://a/b"}, Config{DatabaseURL: "postgres://a/b", Path: DefaultPath, Retention: DefaultRetention}, ""},
		{"own database wins", map[string]string{"AUDIT_DATABASE_URL": "postgres://a/b", "DEAD_LETTER_DATABASE_URL": "postgres://c/d"}, Config{DatabaseURL: "postgres://c/d", Path: DefaultPath, Retention: DefaultRetention}, ""},
		{"days", map[string]string{"DEAD_LETTER_RETENTION": "30d", "DEAD_LETTER_PATH": "/var/lib/dl.jsonl"}, Config{Path: "/var/lib/dl.jsonl", Retention: 30 * 24 * time.Hour}, ""},
		{"hours", map[string]string{"DEAD_LETTER_RETENTION": "36h"}, Config{Path: DefaultPath, Retention: 36 * time.Hour}, ""},
		{"garbage", map[string]string{"DEAD_LETTER_RETENTION": "forever"}, Config{}, "DEAD_LETTER_RETENTION"},
		{"too short", map[string]string{"DEAD_LETTER_RETENTION": "5m"}, Config{}, "at least 1h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %v, want an error naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
