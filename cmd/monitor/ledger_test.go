package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// TestStartLineNamesTheLedger: the start log line and the console's
// footer say which dead-letter ledger the monitor reads.
func TestStartLineNamesTheLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	env := map[string]string{
		"REDIS_URL": peertest.Redis(t), "MONITOR_USERNAME": "ops", "MONITOR_PASSWORD": testPassword,
		"JOB_PROCESSOR_SECRET_TOKEN": testToken, "DEAD_LETTER_PATH": path,
	}
	s := start(t, []string{"-addr", "127.0.0.1:0"}, env)
	defer s.stop(t)
	var line string
	for _, l := range strings.Split(s.errOut.String(), "\n") {
		if strings.Contains(l, "monitor: serving") {
			line = l
		}
	}
	if !strings.Contains(line, `"ledger":"file `+path+`"`) {
		t.Errorf("the start line does not name the ledger file %s: %q", path, line)
	}
	if !strings.Contains(s.out.String(), "dead letters: file "+path) {
		t.Errorf("stdout does not name the ledger: %q", s.out.String())
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/console/dead-letters", nil)
	req.SetBasicAuth("ops", testPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(b.String(), "file "+path) {
		t.Errorf("the console: got %d, footer without the ledger: %.500s", resp.StatusCode, b.String())
	}
}
