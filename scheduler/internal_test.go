package scheduler

import (
	"net/http"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/webhook"
)

// The published Standard Webhooks test vector: a receiver's library must
// accept what the watchdog sends.
func TestSignMatchesStandardWebhooksVector(t *testing.T) {
	signer, err := webhook.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if err := signer.Sign(h, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := h.Get(webhook.HeaderSignature), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestShouldAlert(t *testing.T) {
	for _, tc := range []struct {
		name               string
		archived, previous int
		known              bool
		threshold          int
		want               bool
	}{
		{"first check, under threshold", 5, 0, false, 100, false},
		{"first check, over threshold", 101, 0, false, 100, true},
		{"first check, at threshold", 100, 0, false, 100, false},
		{"grew", 6, 5, true, 100, true},
		{"grew from zero", 1, 0, true, 100, true},
		{"unchanged", 5, 5, true, 100, false},
		{"shrank (requeued)", 4, 5, true, 100, false},
		{"unchanged over threshold", 150, 150, true, 100, true},
		{"shrank but over threshold", 120, 150, true, 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shouldAlert(tc.archived, tc.previous, tc.known, tc.threshold); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCronFireTimes(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		spec, from, want string
	}{
		{"@every 1s", "2026-01-01T00:00:00.4Z", "2026-01-01T00:00:01Z"},
		{"@every 1s", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"},
		// Aligned to the epoch, whenever the process started.
		{"@every 5m", "2026-01-01T00:03:59Z", "2026-01-01T00:05:00Z"},
		{"@every 5m", "2026-01-01T00:01:00Z", "2026-01-01T00:05:00Z"},
		{"@every 1h", "2026-01-01T10:59:59.999Z", "2026-01-01T11:00:00Z"},
		{"* * * * *", "2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z"},
		// UTC, not the process's local zone.
		{"0 3 * * *", "2026-01-01T03:00:00Z", "2026-01-02T03:00:00Z"},
		{"0 3 * * *", "2026-01-01T05:00:00+02:00", "2026-01-02T03:00:00Z"},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", "2026-01-01T00:00:00Z", "2026-01-01T02:00:00Z"},
		{"@hourly", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"},
	} {
		t.Run(tc.spec+" from "+tc.from, func(t *testing.T) {
			s, err := parseCron(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Next(at(tc.from).UTC())
			if want := at(tc.want); !got.Equal(want) {
				t.Errorf("got %s, want %s", got.UTC().Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		secret string
		ok     bool
	}{
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false},
		{"whsec_", false},
		{"whsec_c2hvcnQ=", false}, // 5 bytes
		{"whsec_not base64!", false},
	} {
		_, err := webhook.NewSigner(tc.secret)
		if got := err == nil; got != tc.ok {
			t.Errorf("NewSigner(%q): got err %v, want ok %v", tc.secret, err, tc.ok)
		}
	}
}

func TestAlertID(t *testing.T) {
	p := time.Unix(1767225600, 0)
	for _, tc := range []struct{ queue, want string }{
		{"default", "dl-default-1767225600"},
		{"weird queue\r\n", "dl-"},
	} {
		got := alertID(tc.queue, p)
		if len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
			t.Errorf("alertID(%q): got %q, want prefix %q", tc.queue, got, tc.want)
		}
		for _, r := range got {
			if r < 0x21 || r > 0x7e {
				t.Errorf("alertID(%q): got %q, want printable ASCII only", tc.queue, got)
				break
			}
		}
	}
}
