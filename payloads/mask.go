package payloads

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
)

// RecipientHash stands in for an e-mail address in dedupe keys and job IDs:
// the first 16 hex digits of the SHA-256 of the trimmed, lower-cased address.
func RecipientHash(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:8])
}

var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+`)

// MaskEmail keeps the first character of the local part and the domain:
// "jane.doe@example.com" becomes "j***@example.com".
func MaskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "***"
	}
	return local[:1] + "***@" + domain
}

// MaskEmails masks every e-mail address found in b (JSON, an error message,
// any text) and returns the result.
func MaskEmails(b []byte) []byte {
	return emailPattern.ReplaceAllFunc(b, func(m []byte) []byte { return []byte(MaskEmail(string(m))) })
}

// MaskEmailsString is MaskEmails for strings.
func MaskEmailsString(s string) string {
	return emailPattern.ReplaceAllStringFunc(s, MaskEmail)
}

// MaskedJSON masks the e-mail addresses in b and returns it as JSON: b
// itself when it is JSON, else b as a JSON string (garbage that was put in a
// queue still shows readably).
func MaskedJSON(b []byte) json.RawMessage {
	m := MaskEmails(b)
	if json.Valid(m) {
		return m
	}
	q, _ := json.Marshal(string(m))
	return q
}
