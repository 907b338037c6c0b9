package scheduler_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/scheduler"
	"github.com/escrowjobs/escrowjobs/tasks"
)

const auditPayload = `{"eventId": "evt-nightly", "actor": "scheduler", "action": "nightly-audit", "occurredAt": "2026-01-01T03:00:00Z"}`

func TestLoadEntries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		file      string
		wantNames []string
		wantErr   []string // substrings of the error, all of them
		wantField string   // a field a *payloads.ValidationError names
	}{
		{
			name: "valid",
			file: `{"entries": [
				{"name": "nightly-audit", "cron": "0 3 * * *", "type": "audit_log_created", "payload": ` + auditPayload + `},
				{"name": "hourly-capture", "cron": "@hourly", "type": "stripe_capture_payment", "payload": {"transactionId": "esc-1", "paymentIntentId": "pi_123"}},
				{"name": "berlin", "cron": "CRON_TZ=Europe/Berlin 30 4 * * 1-5", "type": "stripe_capture_payment", "payload": {"transactionId": "esc-2", "paymentIntentId": "pi_456"}}]}`,
			wantNames: []string{"nightly-audit", "hourly-capture", "berlin"},
		},
		{name: "empty", file: `{"entries": []}`},
		{
			name:      "bad payload names the entry and the field",
			file:      `{"entries": [{"name": "nightly-audit", "cron": "0 3 * * *", "type": "audit_log_created", "payload": {"eventId": "evt-1", "action": "x", "occurredAt": "yesterday"}}]}`,
			wantErr:   []string{`entry "nightly-audit"`, "actor", "occurredAt"},
			wantField: "actor",
		},
		{
			name:      "unknown payload field",
			file:      `{"entries": [{"name": "cap", "cron": "@daily", "type": "stripe_capture_payment", "payload": {"transactionId": "esc-1", "paymentIntentId": "pi_1", "amount": 5}}]}`,
			wantErr:   []string{`entry "cap"`, "amount: is not a field of stripe_capture_payment"},
			wantField: "amount",
		},
		{
			name:      "wrong payload type",
			file:      `{"entries": [{"name": "cap", "cron": "@daily", "type": "stripe_capture_payment", "payload": {"transactionId": "esc-1", "paymentIntentId": "pi_1", "amountToCapture": "5"}}]}`,
			wantErr:   []string{`entry "cap"`, "amountToCapture"},
			wantField: "amountToCapture",
		},
		{
			name:      "missing payload",
			file:      `{"entries": [{"name": "cap", "cron": "@daily", "type": "stripe_capture_payment"}]}`,
			wantErr:   []string{`entry "cap"`, "payload: is empty"},
			wantField: "payload",
		},
		{
			name:    "bad cron spec",
			file:    `{"entries": [{"name": "nightly-audit", "cron": "0 25 * * *", "type": "audit_log_created", "payload": ` + auditPayload + `}]}`,
			wantErr: []string{`entry "nightly-audit": cron "0 25 * * *"`},
		},
		{
			name:    "six fields are not standard",
			file:    `{"entries": [{"name": "n", "cron": "0 0 3 * * *", "type": "audit_log_created", "payload": ` + auditPayload + `}]}`,
			wantErr: []string{`entry "n": cron`},
		},
		{
			name:    "never fires",
			file:    `{"entries": [{"name": "feb30", "cron": "0 0 30 2 *", "type": "audit_log_created", "payload": ` + auditPayload + `}]}`,
			wantErr: []string{`entry "feb30": cron "0 0 30 2 *" never fires`},
		},
		{
			name:    "unknown type",
			file:    `{"entries": [{"name": "mystery", "cron": "@daily", "type": "send_sms", "payload": {}}]}`,
			wantErr: []string{`entry "mystery": type: unknown job type "send_sms"`},
		},
		{
			name:    "bad name",
			file:    `{"entries": [{"name": "nightly audit!", "cron": "@daily", "type": "audit_log_created", "payload": ` + auditPayload + `}]}`,
			wantErr: []string{`entry "nightly audit!": name`},
		},
		{
			name:    "missing name",
			file:    `{"entries": [{"cron": "@daily", "type": "audit_log_created", "payload": ` + auditPayload + `}]}`,
			wantErr: []string{"entry 1: name: is required"},
		},
		{
			name: "duplicate name",
			file: `{"entries": [{"name": "a", "cron": "@daily", "type": "audit_log_created", "payload": ` + auditPayload + `},
				{"name": "a", "cron": "@hourly", "type": "audit_log_created", "payload": ` + auditPayload + `}]}`,
			wantErr: []string{`entry "a": name: is used twice`},
		},
		{
			name: "every bad entry is reported",
			file: `{"entries": [{"name": "a", "cron": "nope", "type": "audit_log_created", "payload": ` + auditPayload + `},
				{"name": "b", "cron": "@daily", "type": "nope", "payload": {}}]}`,
			wantErr: []string{`entry "a": cron`, `entry "b": type`},
		},
		{name: "unknown top-level field", file: `{"entrys": []}`, wantErr: []string{`unknown field "entrys"`}},
		{name: "not JSON", file: `entries:`, wantErr: []string{"schedule file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.file)
			entries, err := scheduler.LoadEntries(path)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("got %d entries and no error, want an error containing %q", len(entries), tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("got error %q, want it to contain %q", err, w)
					}
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("got error %q, want it to name the file", err)
				}
				if tc.wantField != "" {
					var ve *payloads.ValidationError
					if !errors.As(err, &ve) {
						t.Fatalf("got %T, want a *payloads.ValidationError in the chain", err)
					}
					if !slices.ContainsFunc(ve.Fields, func(f payloads.FieldError) bool { return f.Field == tc.wantField }) {
						t.Errorf("got fields %v, want %q among them", ve.Fields, tc.wantField)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name)
			}
			if !slices.Equal(names, tc.wantNames) {
				t.Errorf("got entries %q, want %q", names, tc.wantNames)
			}
		})
	}
}

func TestLoadEntriesMissingFile(t *testing.T) {
	_, err := scheduler.LoadEntries(t.TempDir() + "/nope.json")
	if err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Fatalf("got %v, want an error naming the file", err)
	}
}

// A loaded entry builds a job of its type with the period's dedupe key.
func TestLoadedEntryBuildsPeriodJob(t *testing.T) {
	entries, err := scheduler.LoadEntries(writeFile(t, `{"entries": [{"name": "nightly-audit", "cron": "0 3 * * *", "type": "audit_log_created", "payload": `+auditPayload+`}]}`))
	if err != nil {
		t.Fatal(err)
	}
	period := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	task, err := entries[0].Build(period, tasks.DedupeKey("sched-nightly-audit-1767322800"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := task.ID, "audit_log_created:sched-nightly-audit-1767322800"; got != want {
		t.Errorf("got ID %q, want %q", got, want)
	}
	if got, want := task.Queue, payloads.QueueLow; got != want {
		t.Errorf("got queue %q, want %q", got, want)
	}
}
