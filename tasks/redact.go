package tasks

import (
	"regexp"
	"strings"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// urlInText finds a URL in free text: a scheme, "://" and everything up
// to a space, a quote or an angle bracket (so the URL of an error built
// with %q ends at its quote).
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>` + "`" + `]+`)

// RedactText hides what an error or log text may carry that is not to be
// shown: of every URL in s its user and password (xxxxx) and its query
// and fragment (?xxxxx), where partners put their tokens, also of a URL
// too broken to parse; and every e-mail address
// (payloads.MaskEmailsString).
func RedactText(s string) string {
	if !strings.Contains(s, "://") {
		return payloads.MaskEmailsString(s)
	}
	var b strings.Builder
	prev := 0
	for _, m := range urlInText.FindAllStringIndex(s, -1) {
		b.WriteString(payloads.MaskEmailsString(s[prev:m[0]]))
		b.WriteString(redactURLText(s[m[0]:m[1]]))
		prev = m[1]
	}
	b.WriteString(payloads.MaskEmailsString(s[prev:]))
	return b.String()
}

// redactURLText is u without its userinfo, query and fragment, read as
// text: "scheme://" and the authority up to the first '/', '?' or '#';
// an address in its path is masked.
func redactURLText(u string) string {
	i := strings.Index(u, "://") + len("://")
	scheme, rest := u[:i], u[i:]
	end := len(rest)
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		end = j
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		authority = "xxxxx" + authority[at:]
	}
	if j := strings.IndexAny(tail, "?#"); j >= 0 {
		tail = tail[:j] + "?xxxxx"
	}
	return scheme + authority + payloads.MaskEmailsString(tail)
}
