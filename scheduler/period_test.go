package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
)

func TestFileEntriesFillThePeriod(t *testing.T) {
	entries, err := LoadEntries(peertest.TempFile(t, "schedule.json", `{"entries":[{"name":"nightly-audit","cron":"0 3 * * *","type":"audit_log_created",
		"payload":{"eventId":"nightly-{{period}}","actor":"scheduler","action":"audit.nightly","occurredAt":"{{periodTime}}"}}]}`))
	if err != nil {
		t.Fatalf("LoadEntries: %v", err)
	}
	period := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	task, err := entries[0].Build(period)
	if err != nil {
		t.Fatal(err)
	}
	got := string(task.Payload())
	for _, want := range []string{`"eventId":"nightly-20261129T030000Z"`, `"occurredAt":"2026-11-29T03:00:00Z"`} {
		if !strings.Contains(got, want) {
			t.Errorf("got payload %s, want it to contain %s", got, want)
		}
	}
	next, _ := entries[0].Build(period.Add(24 * time.Hour))
	if next.ID == task.ID {
		t.Errorf("got the same job ID %s for two periods, want distinct", task.ID)
	}
}
