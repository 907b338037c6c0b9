package tasks

import "unicode/utf8"

// maxEchoedName bounds a name a caller sent (an unknown field or type) when
// an error repeats it: a 60 KB field name must not make a 120 KB answer.
const maxEchoedName = 64

// echoName is s cut to its first maxEchoedName characters, "…" marking the
// cut. It never splits a character.
func echoName(s string) string {
	if utf8.RuneCountInString(s) <= maxEchoedName {
		return s
	}
	n := 0
	for i := range s {
		if n == maxEchoedName {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
