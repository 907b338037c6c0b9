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
		{"days", map[string]string{"DEAD_LETTER_RETENTION": "30d", "DEAD_LETTER_PATH": "/var/lib/dl.jsonl"}, Config{Path: "/var/lib/dl.jsonl", Retention: 30 * 24 * time.Hour, pathSet: true}, ""},
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

func TestRequireAndString(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		wantErr    bool
		wantString string
	}{
		{"nothing set", nil, true, "file "},
		{"file", map[string]string{"DEAD_LETTER_PATH": "/var/lib/dl.jsonl"}, false, "file /var/lib/dl.jsonl"},
		{"database", map[string]string{"DEAD_LETTER_DATABASE_URL": "postgres://u:secret@db.internal:5433/ledger"}, false, "postgres (db.internal:5433/ledger)"},
		{"audit database", map[string]string{"AUDIT_DATABASE_URL": "host=db.internal dbname=audit password=secret"}, false, "postgres (db.internal:5432/audit)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Require(); (err != nil) != tt.wantErr {
				t.Errorf("Require: got %v, want an error: %v", err, tt.wantErr)
			}
			got := c.String()
			if !strings.HasPrefix(got, tt.wantString) || strings.Contains(got, "secret") {
				t.Errorf("got %q, want %q without the password", got, tt.wantString)
			}
		})
	}
}
