package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a Standard Webhooks request.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a webhook-timestamp may be from the receiver's
// clock, in either direction, when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// secretPrefix marks a symmetric Standard Webhooks secret.
const secretPrefix = "whsec_"

// signatureVersion is the identifier of an HMAC-SHA256 signature.
const signatureVersion = "v1"

// maxIDLen bounds a webhook-id.
const maxIDLen = 256

// ErrInvalidSecret is returned when a secret is not "whsec_" followed by
// non-empty standard base64. The error never contains the secret.
var ErrInvalidSecret = errors.New("webhook: invalid secret: want whsec_ followed by base64")

// ErrInvalidID is returned by Sign for an empty webhook-id, one longer than
// 256 bytes, or one with spaces or control characters.
var ErrInvalidID = errors.New("webhook: invalid webhook-id")

// ErrMissingHeader is returned by Verify when the webhook-id or the
// webhook-timestamp header is absent or empty.
var ErrMissingHeader = errors.New("webhook: missing header")

// ErrInvalidTimestamp is returned by Verify when webhook-timestamp is not an
// integer number of seconds.
var ErrInvalidTimestamp = errors.New("webhook: invalid webhook-timestamp")

// ErrNoSignature is returned by Verify when the webhook-signature header is
// absent or carries no v1 signature.
var ErrNoSignature = errors.New("webhook: no v1 signature")

// ErrInvalidSignature is returned by Verify when no v1 signature in the
// header matches the body, id and timestamp under the secret.
var ErrInvalidSignature = errors.New("webhook: no matching signature")

// ErrTimestampTooOld is returned by Verify when webhook-timestamp is further
// in the past than the tolerance: a stale or replayed request.
var ErrTimestampTooOld = errors.New("webhook: timestamp too old")

// ErrTimestampTooNew is returned by Verify when webhook-timestamp is further
// in the future than the tolerance.
var ErrTimestampTooNew = errors.New("webhook: timestamp too new")

// Sign returns the Standard Webhooks signature "v1,<base64>" of body sent
// with webhook-id id at time ts (whole unix seconds), under secret
// ("whsec_<base64>"; the prefix may be left out, as in the reference
// libraries).
func Sign(secret string, id string, ts time.Time, body []byte) (string, error) {
	key, err := decodeSecret(secret, false)
	if err != nil {
		return "", err
	}
	if err := CheckID(id); err != nil {
		return "", err
	}
	return signatureVersion + "," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)), nil
}

// MinSignerKeyLen is the shortest key NewSigner accepts, in bytes. The
// partner registry (package partner) asks for more (24 to 64, as Standard Webhooks advises).
const MinSignerKeyLen = 16

// Signer signs outgoing Standard Webhooks requests: the partner webhooks
// of partner.Sender and the scheduler's dead-letter alerts. With more than one
// key (a secret rotation) every request carries one v1 signature per key.
// It never prints its keys.
type Signer struct{ keys []secretKey }

// NewSigner returns a Signer for secrets, each "whsec_" followed by the
// standard base64 of a key of at least MinSignerKeyLen bytes. Its errors
// never quote a secret.
func NewSigner(secrets ...string) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no secret: want whsec_<base64>")
	}
	s := &Signer{}
	for _, secret := range secrets {
		b64, ok := strings.CutPrefix(secret, secretPrefix)
		if !ok {
			return nil, errors.New("want whsec_<base64>")
		}
		key, err := decodeSecret(b64, false)
		if err != nil {
			return nil, errors.New("the part after whsec_ is not standard base64")
		}
		if len(key) < MinSignerKeyLen {
			return nil, fmt.Errorf("the key is %d bytes, want at least %d", len(key), MinSignerKeyLen)
		}
		s.keys = append(s.keys, key)
	}
	return s, nil
}

// Sign sets the webhook-id, webhook-timestamp and webhook-signature
// headers of a request that sends body with webhook-id id at time ts
// (whole unix seconds). It returns ErrInvalidID for an id that cannot be
// sent.
func (s *Signer) Sign(h http.Header, id string, ts time.Time, body []byte) error {
	if err := CheckID(id); err != nil {
		return err
	}
	unix := ts.Unix()
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(unix, 10))
	h.Set(HeaderSignature, signatures(s.keys, id, unix, body))
	return nil
}

// String is a placeholder: a Signer never prints its keys.
func (s *Signer) String() string { return fmt.Sprintf("webhook.Signer(%d keys)", len(s.keys)) }

// Verify checks a request a partner received: that its webhook-timestamp is
// within tolerance of the current time (DefaultTolerance when tolerance is
// zero or negative) and that one of the v1 signatures in webhook-signature
// matches body under secret. body must be the raw bytes received, before
// any JSON decoding. The comparison is constant-time. Errors wrap
// ErrInvalidSecret, ErrMissingHeader, ErrInvalidTimestamp,
// ErrTimestampTooOld, ErrTimestampTooNew, ErrNoSignature or
// ErrInvalidSignature.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	return verifyAt(secret, header, body, tolerance, time.Now())
}

// verifyAt is Verify with the receiver's clock reading now.
func verifyAt(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := decodeSecret(secret, false)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	id := header.Get(HeaderID)
	if id == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderID)
	}
	rawTS := header.Get(HeaderTimestamp)
	if rawTS == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderTimestamp)
	}
	ts, err := strconv.ParseInt(rawTS, 10, 64)
	if err != nil || ts < 0 {
		return ErrInvalidTimestamp
	}
	// Compare in whole seconds, the unit of the header; the bound is
	// inclusive. Clamp so that absurd timestamps cannot overflow.
	tol := int64(tolerance / time.Second)
	switch age := now.Unix() - ts; {
	case age > tol:
		return fmt.Errorf("%w: %ds old, tolerance %s", ErrTimestampTooOld, age, tolerance)
	case age < -tol:
		return fmt.Errorf("%w: %ds ahead, tolerance %s", ErrTimestampTooNew, -age, tolerance)
	}

	want := mac(key, id, ts, body)
	seen := false
	for _, entry := range strings.Fields(header.Get(HeaderSignature)) {
		version, value, ok := strings.Cut(entry, ",")
		if !ok || version != signatureVersion {
			continue
		}
		seen = true
		got, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	if !seen {
		return ErrNoSignature
	}
	return ErrInvalidSignature
}

// signatures returns the space-separated v1 signatures of one request, one
// per key.
func signatures(keys []secretKey, id string, ts int64, body []byte) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(signatureVersion + ",")
		b.WriteString(base64.StdEncoding.EncodeToString(mac(k, id, ts, body)))
	}
	return b.String()
}

// mac is HMAC-SHA256 of "id.ts.body" under key.
func mac(key []byte, id string, ts int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, ts, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// decodeSecret returns the key of a "whsec_<base64>" secret. The prefix is
// required when strict is set.
func decodeSecret(secret string, strict bool) (secretKey, error) {
	b64, found := strings.CutPrefix(secret, secretPrefix)
	if strict && !found {
		return nil, ErrInvalidSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return nil, ErrInvalidSecret
	}
	return key, nil
}

// CheckID returns ErrInvalidID unless id can be sent as a webhook-id: 1 to
// 256 bytes, none of them a space or a control character. Signer.Sign runs
// it; a sender can run it first, to refuse a delivery before any other work.
func CheckID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return ErrInvalidID
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c == 0x7f {
			return ErrInvalidID
		}
	}
	return nil
}

// secretKey is a decoded signing key. It formats as a placeholder so that a
// stray %v or log line never prints it.
type secretKey []byte

func (secretKey) String() string   { return "[redacted]" }
func (secretKey) GoString() string { return "[redacted]" }
