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
		name, meta string
		completed  []string
		want       string
	}{
		{"no metadata", ``, nil, `{"failedStep":"capture","failure":"declined"}`},
		{"null", `null`, nil, `{"failedStep":"capture","failure":"declined"}`},
		{"metadata of its own", `{"status":"release_failed"}`, nil, `{"failedStep":"capture","failure":"declined","status":"release_failed"}`},
		{"a failure key of its own is kept", `{"failure":"mine"}`, nil, `{"failedStep":"capture","failure":"mine"}`},
		{"none completed", ``, []string{}, `{"completedSteps":[],"failedStep":"capture","failure":"declined"}`},
		{"steps completed", `{"status":"release_failed"}`, []string{"audit"}, `{"completedSteps":["audit"],"failedStep":"capture","failure":"declined","status":"release_failed"}`},
		{"too big with them", big, []string{"capture"}, big},
		{"not an object", `[1]`, nil, `[1]`},
	} {
		got := string(withFailure(json.RawMessage(tc.meta), "capture", "declined", tc.completed))
		if got != tc.want {
			t.Errorf("%s: got %.80s, want %.80s", tc.name, got, tc.want)
		}
	}
}
