package handlers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/payloads"
)

func TestWithFailureAddsTheFailedStepToTheMetadata(t *testing.T) {
	big := `{"a":"` + strings.Repeat("x", payloads.MaxMetadataBytes-20) + `"}`
	for _, tc := range []struct {
		name, meta, want string
	}{
		{"no metadata", ``, `{"failedStep":"capture","failure":"declined"}`},
		{"null", `null`, `{"failedStep":"capture","failure":"declined"}`},
		{"metadata of its own", `{"status":"release_failed"}`, `{"failedStep":"capture","failure":"declined","status":"release_failed"}`},
		{"a failure key of its own is kept", `{"failure":"mine"}`, `{"failedStep":"capture","failure":"mine"}`},
		{"too big with them", big, big},
		{"not an object", `[1]`, `[1]`},
	} {
		got := string(withFailure(json.RawMessage(tc.meta), "capture", "declined"))
		if got != tc.want {
			t.Errorf("%s: got %.80s, want %.80s", tc.name, got, tc.want)
		}
	}
}
