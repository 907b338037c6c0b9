package soak

import (
	"regexp"
	"strings"
)

// keyIDs are the parts of a Redis key that name one job, escrow, flow,
// event, process or time: KeyPattern replaces them, so that keys that
// differ only by them fall into one group.
var keyIDs = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<uuid>"},
	{regexp.MustCompile(`pi_[A-Za-z0-9]+`), "<pi>"},
	{regexp.MustCompile(`ev-[0-9a-f]+`), "<event>"},
	{regexp.MustCompile(`(dsp-)?soak-[0-9]+`), "<escrow>"},
	{regexp.MustCompile(`[0-9a-f]{16,}`), "<hex>"},
	{regexp.MustCompile(`[0-9]{4}-[0-9]{2}-[0-9]{2}`), "<date>"},
	{regexp.MustCompile(`[0-9]{2,}`), "<n>"},
}

// KeyPattern is key with its identifiers replaced by placeholders
// ("escrowjobs:flow:{release:soak-12}" → "escrowjobs:flow:{release:<escrow>}").
// The flow, job and escrow IDs of the soak are "soak-<n>" based.
func KeyPattern(key string) string {
	for _, r := range keyIDs {
		key = r.re.ReplaceAllString(key, r.with)
	}
	return strings.TrimSpace(key)
}

// Growth compares the number of keys without an expiry per pattern at two
// moments of a run (before, after) and returns the patterns whose count
// grew by more than slack: keys that pile up with the number of jobs or
// escrows and are never removed.
func Growth(before, after map[string]int, slack int) map[string][2]int {
	out := map[string][2]int{}
	for p, n := range after {
		if n > before[p]+slack {
			out[p] = [2]int{before[p], n}
		}
	}
	return out
}
