package historyindex

import (
	"strconv"
	"testing"
	"time"
)

func TestSuffix(t *testing.T) {
	for _, tc := range []struct {
		queue, typeQueue, want string
	}{
		{"default", "default", ""},
		{"low", "default", " low"},
		{"critical", "", " critical"}, // a type of no known queue
	} {
		if got := Suffix(tc.queue, tc.typeQueue); got != tc.want {
			t.Errorf("Suffix(%q, %q): got %q, want %q", tc.queue, tc.typeQueue, got, tc.want)
		}
	}
}

func TestStampIsBase36UnixNanos(t *testing.T) {
	at := time.Date(2026, 12, 3, 19, 0, 0, 123, time.UTC)
	got, err := strconv.ParseInt(Stamp(at), 36, 64)
	if err != nil || got != at.UnixNano() {
		t.Errorf("Stamp(%s) read back: got %d (%v), want %d", at, got, err, at.UnixNano())
	}
	if got, want := Key("esc-1"), "escrowjobs:ix:esc-1"; got != want {
		t.Errorf("Key: got %q, want %q", got, want)
	}
}
