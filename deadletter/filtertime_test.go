package deadletter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "2h", want: now.Add(-2 * time.Hour)},
		{in: "0s", want: now},
		{in: "2026-11-29T08:30:00Z", want: time.Date(2026, 11, 29, 8, 30, 0, 0, time.UTC)},
		{in: "2026-11-29T08:30:00.5+01:00", want: time.Date(2026, 11, 29, 7, 30, 0, 5e8, time.UTC)},
		{in: "-1h", wantErr: "negative duration"},
		{in: "yesterday", wantErr: "RFC 3339 time or a duration"},
		{in: "2026-11-29", wantErr: "RFC 3339 time or a duration"},
		{in: "", wantErr: "RFC 3339 time or a duration"},
	} {
		got, err := deadletter.ParseTime(tc.in, now)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseTime(%q): got err %v, want one saying %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q): got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
