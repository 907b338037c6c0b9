package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// token is the CSRF token of user's forms: an HMAC of the user under the
// Console's key, so a page of another user, or of another monitor
// process, does not carry it.
func (c *Console) token(user string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("escrowjobs console csrf\x00"))
	m.Write([]byte(user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validToken compares in constant time.
func (c *Console) validToken(user, given string) bool {
	if given == "" {
		return false
	}
	return hmac.Equal([]byte(given), []byte(c.token(user)))
}
