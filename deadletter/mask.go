package deadletter

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// addressPattern also finds what payloads.MaskEmails misses: a quoted
// local part ("jane doe"@example.com) and a non-ASCII domain
// (jane@bücher.de).
var addressPattern = regexp.MustCompile(`(?:"[^"\r\n]{1,64}"|[\p{L}\p{N}._%+\-]+)@[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)+`)

// maskText masks every e-mail address in s.
func maskText(s string) string {
	return addressPattern.ReplaceAllStringFunc(payloads.MaskEmailsString(s), payloads.MaskEmail)
}

// maskPayload shows b with every address masked: JSON stays JSON (each
// string value masked on its own, so escaped quotes cannot hide an
// address), anything else becomes a JSON string.
func maskPayload(b []byte) json.RawMessage {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		q, _ := json.Marshal(maskText(strings.ToValidUTF8(string(b), "\uFFFD")))
		return q
	}
	out, err := json.Marshal(maskValue(v))
	if err != nil {
		return payloads.MaskedJSON(b)
	}
	return out
}

func maskValue(v any) any {
	switch t := v.(type) {
	case string:
		return maskText(t)
	case map[string]any:
		for k, x := range t {
			t[k] = maskValue(x)
		}
	case []any:
		for i, x := range t {
			t[i] = maskValue(x)
		}
	}
	return v
}
