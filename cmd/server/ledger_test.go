package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// The worker says at start which dead-letter ledger it records into, so an
// operator can point jobctl and the monitor at the same one.
func TestStartLogNamesTheLedger(t *testing.T) {
	e := setupPartners(t, map[string]regEntry{"p1": {URL: "https://example.com/hook", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, nil)
	e.start()
	want := "file " + filepath.Join(e.dir, "dead-letters.jsonl")
	if got := ledgerLogged(e.logs.String()); got != want {
		t.Errorf("got ledger %q, want %q", got, want)
	}
}

// ledgerLogged is the "ledger" of the "dead-letter ledger" log line.
func ledgerLogged(logs string) string {
	for _, l := range strings.Split(logs, "\n") {
		var rec struct{ Msg, Ledger string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "dead-letter ledger" {
			return rec.Ledger
		}
	}
	return ""
}
