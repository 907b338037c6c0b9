package monitor

import (
	"net/url"
	"strings"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// maskPath is u's path for a log line or an answer, e-mail addresses
// masked. Each segment is decoded and masked on its own, so the route
// stays readable ("/api/v1/jobs/j***@example.com") and a '/' encoded
// inside an address cannot split it.
func maskPath(u *url.URL) string {
	segs := strings.Split(u.EscapedPath(), "/")
	for i, s := range segs {
		if d, err := url.PathUnescape(s); err == nil {
			s = d
		}
		segs[i] = payloads.MaskEmailsString(s)
	}
	return strings.Join(segs, "/")
}
