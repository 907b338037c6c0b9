package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/cmd/internal/ledgerenv"
	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/peertest"
)

// jobctl reads the workers' ledger or fails saying why: it takes no
// default, never creates a file ledger, and dlq list (every ledger command
// with -v) says on stderr which ledger it read.
func TestLedgerIsNamedNeverGuessedNeverCreated(t *testing.T) {
	t.Chdir(t.TempDir()) // where the old default dead-letters.jsonl would appear
	missing := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	existing := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	if err := os.WriteFile(existing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStderr []string // each in stderr
		wantStdout string
	}{
		{"nothing set", nil, []string{"dlq", "list"}, 1, []string{"DEAD_LETTER_PATH", "DEAD_LETTER_DATABASE_URL"}, ""},
		{"nothing set, show", nil, []string{"dlq", "show", "x"}, 1, []string{"DEAD_LETTER_PATH", "DEAD_LETTER_DATABASE_URL"}, ""},
		{"nothing set, history", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, []string{"history", "esc-1"}, 1, []string{"DEAD_LETTER_PATH", "DEAD_LETTER_DATABASE_URL"}, ""},
		{"missing file", map[string]string{"DEAD_LETTER_PATH": missing}, []string{"dlq", "list"}, 1, []string{"DEAD_LETTER_PATH", missing}, ""},
		{"missing file, json", map[string]string{"DEAD_LETTER_PATH": missing}, []string{"--json", "dlq", "list"}, 1, []string{missing}, ""},
		{"existing file", map[string]string{"DEAD_LETTER_PATH": existing}, []string{"dlq", "list"}, 0, []string{"ledger: file " + existing + "\n"}, "no dead letters"},
		{"existing file, show with -v", map[string]string{"DEAD_LETTER_PATH": existing}, []string{"-v", "dlq", "show", "x"}, 1, []string{"ledger: file " + existing + "\n", "no dead letter of job x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runWith(tc.env, "", tc.args...)
			if r.code != tc.wantCode || strings.TrimSpace(r.stdout) != tc.wantStdout {
				t.Errorf("got exit %d stdout %q (stderr %q), want exit %d stdout %q", r.code, r.stdout, r.stderr, tc.wantCode, tc.wantStdout)
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr: got %q, want it to contain %q", r.stderr, w)
				}
			}
			for _, p := range []string{missing, missing + ".lock", ledgerenv.DefaultPath, ledgerenv.DefaultPath + ".lock"} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("got a file %s, want jobctl to create no ledger", p)
				}
			}
		})
	}
}

// With the PostgreSQL ledger dlq list lists its dead letters and names the
// database (never its password) on stderr.
func TestDLQListNamesThePostgresLedger(t *testing.T) {
	url := peertest.Postgres(t)
	lc, err := ledgerenv.Load(func(k string) string { return map[string]string{"DEAD_LETTER_DATABASE_URL": url}[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := lc.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const open = 15
	for i := range open {
		e := deadletter.Entry{
			ID: fmt.Sprintf("send_release_email:esc-%02d", i), Type: "send_release_email", Queue: "default", State: deadletter.StateOpen,
			Error: "smtp: 550", Attempts: 1, FailedAt: time.Now().Add(-time.Duration(i) * time.Minute), Why: "permanent",
			Payload: json.RawMessage(`{}`),
		}
		if _, err := st.Ledger.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	t.Chdir(t.TempDir())
	env := map[string]string{"DEAD_LETTER_DATABASE_URL": url}
	r := runWith(env, "", "--json", "dlq", "list")
	if r.code != 0 {
		t.Fatalf("got exit %d (stderr %q), want 0", r.code, r.stderr)
	}
	if got, want := len(decode[deadLetterList](t, r.stdout).Items), open; got != want {
		t.Errorf("got %d dead letters, want %d", got, want)
	}
	if want := "ledger: " + lc.String() + "\n"; r.stderr != want || !strings.HasPrefix(want, "ledger: postgres (") {
		t.Errorf("stderr: got %q, want %q", r.stderr, want)
	}
	if _, err := os.Stat(ledgerenv.DefaultPath); err == nil {
		t.Errorf("got a file %s, want none with a database ledger", ledgerenv.DefaultPath)
	}
}
