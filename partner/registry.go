package partner

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/escrowjobs/escrowjobs/webhook"
)

// Bounds of a registry secret's key, from the Standard Webhooks
// specification: at least 24 bytes, at most 64.
const (
	minKeyLen = 24
	maxKeyLen = 64
)

// maxPartnerIDLen bounds a partner ID, like every identifier of a payload.
const maxPartnerIDLen = 64

// Registry is the set of partners webhooks can be sent to: for each partner
// ID, its endpoint URL and its signing secrets. It is read-only after
// LoadRegistry and safe for concurrent use.
type Registry struct {
	partners map[string]partner
}

// partner is one registry entry.
type partner struct {
	url    *url.URL
	signer *webhook.Signer
	limits Limits
	// ordered: the events of one escrow are delivered strictly in
	// sequence (registry "ordered").
	ordered bool
}

// DefaultMaxConcurrency is a partner's maxConcurrency when the registry
// does not set one.
const DefaultMaxConcurrency = 4

// maxMaxConcurrency bounds a registry's maxConcurrency.
const maxMaxConcurrency = 1000

// Limits are a partner's delivery limits, enforced across every worker
// process.
type Limits struct {
	// MaxConcurrency is how many deliveries to the partner may be in
	// flight at once (registry "maxConcurrency", default 4).
	MaxConcurrency int
	// RatePerSecond caps how many deliveries start per second (registry
	// "ratePerSecond"); 0 is no cap.
	RatePerSecond float64
}

// registryFile is the JSON shape of WEBHOOK_ENDPOINTS_FILE. Entries are
// decoded one by one so that an error can name its partner.
type registryFile struct {
	Partners map[string]json.RawMessage `json:"partners"`
}

// registryEntry is one partner in WEBHOOK_ENDPOINTS_FILE.
type registryEntry struct {
	URL            string   `json:"url"`
	Secret         string   `json:"secret"`
	Secrets        []string `json:"secrets"`
	MaxConcurrency *int     `json:"maxConcurrency"`
	RatePerSecond  *float64 `json:"ratePerSecond"`
	Ordered        *bool    `json:"ordered"`
}

// LoadRegistry reads and validates the partner registry at path:
//
//	{"partners": {"<partnerId>": {"url": "https://…", "secret": "whsec_…",
//	                              "maxConcurrency": 4, "ratePerSecond": 10}}}
//
// maxConcurrency (1–1000, default 4) and ratePerSecond (positive, optional)
// limit deliveries to the partner across every worker process; "ordered":
// true delivers the events of one escrow strictly in sequence (a later
// one waits until the earlier one is delivered, discarded or a final dead
// letter); "secrets": ["whsec_…", …] is accepted besides (or instead of)
// "secret" for rotation. Partner IDs are 1–64 letters, digits, '-', '_' or '.'. URLs
// must be absolute https without credentials; allowHTTP also admits http
// (test mode only). Every secret must be "whsec_" followed by standard
// base64 of 24 to 64 bytes. Errors name the file, the partner and the
// field, and never contain a secret.
func LoadRegistry(path string, allowHTTP bool) (*Registry, error) {
	reg, _, err := readRegistry(path, allowHTTP)
	return reg, err
}

// readRegistry is LoadRegistry that also returns the file's contents.
func readRegistry(path string, allowHTTP bool) (*Registry, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook registry: %w", err)
	}
	reg, err := parseRegistry(data, allowHTTP)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook registry %s: %w", path, err)
	}
	return reg, data, nil
}

// parseRegistry validates a registry file's contents.
func parseRegistry(data []byte, allowHTTP bool) (*Registry, error) {
	var f registryFile
	if err := decodeStrict(data, &f); err != nil {
		return nil, err
	}
	if len(f.Partners) == 0 {
		return nil, errors.New(`no partners: want {"partners": {"<partnerId>": {"url": …, "secret": …}}}`)
	}

	reg := &Registry{partners: make(map[string]partner, len(f.Partners))}
	for _, id := range slices.Sorted(maps.Keys(f.Partners)) {
		var e registryEntry
		if err := decodeStrict(f.Partners[id], &e); err != nil {
			return nil, fmt.Errorf("partner %q: %w", id, err)
		}
		if !validPartnerID(id) {
			return nil, fmt.Errorf("partner %q: id: want 1-64 letters, digits, '-', '_' or '.'", id)
		}
		u, err := checkURL(e.URL, allowHTTP)
		if err != nil {
			return nil, fmt.Errorf("partner %q: url: %w", id, err)
		}
		if e.Secret == "" && len(e.Secrets) == 0 {
			return nil, fmt.Errorf(`partner %q: secret: missing (set "secret" or "secrets")`, id)
		}
		p := partner{url: u, limits: Limits{MaxConcurrency: DefaultMaxConcurrency}}
		if e.MaxConcurrency != nil {
			if *e.MaxConcurrency < 1 || *e.MaxConcurrency > maxMaxConcurrency {
				return nil, fmt.Errorf("partner %q: maxConcurrency: %d, want 1 to %d", id, *e.MaxConcurrency, maxMaxConcurrency)
			}
			p.limits.MaxConcurrency = *e.MaxConcurrency
		}
		if e.RatePerSecond != nil {
			if !(*e.RatePerSecond > 0) || *e.RatePerSecond > 1e6 {
				return nil, fmt.Errorf("partner %q: ratePerSecond: %g, want a positive number of deliveries per second", id, *e.RatePerSecond)
			}
			p.limits.RatePerSecond = *e.RatePerSecond
		}
		p.ordered = e.Ordered != nil && *e.Ordered
		var keys [][]byte    // the decoded keys, each once, in order
		var secrets []string // the secret of each key
		add := func(field, s string) error {
			key, err := decodeSecret(s)
			if err != nil {
				return fmt.Errorf("partner %q: %s: want whsec_ followed by standard base64", id, field)
			}
			if len(key) < minKeyLen || len(key) > maxKeyLen {
				return fmt.Errorf("partner %q: %s: key is %d bytes, want %d to %d", id, field, len(key), minKeyLen, maxKeyLen)
			}
			if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) }) {
				keys = append(keys, key)
				secrets = append(secrets, s)
			}
			return nil
		}
		if e.Secret != "" {
			if err := add("secret", e.Secret); err != nil {
				return nil, err
			}
		}
		for i, s := range e.Secrets {
			if err := add(fmt.Sprintf("secrets[%d]", i), s); err != nil {
				return nil, err
			}
		}
		// Every secret is whsec_ and the base64 of a key of minKeyLen or more
		// bytes, so webhook.NewSigner accepts them all.
		signer, err := webhook.NewSigner(secrets...)
		if err != nil {
			return nil, fmt.Errorf("partner %q: secrets: %w", id, err)
		}
		p.signer = signer
		reg.partners[id] = p
	}
	return reg, nil
}

// Partners returns the partner IDs, sorted.
func (r Registry) Partners() []string { return slices.Sorted(maps.Keys(r.partners)) }

// String lists the partner IDs; it never formats a URL or a secret.
func (r Registry) String() string {
	return "partner.Registry{partners: " + strings.Join(r.Partners(), ", ") + "}"
}

// GoString is String, so %#v does not print the secrets either.
func (r Registry) GoString() string { return r.String() }

// Has reports whether the registry has a partner with the given ID.
func (r Registry) Has(id string) bool { _, ok := r.partners[id]; return ok }

// Limits returns a partner's delivery limits; ok is false for an unknown
// partner.
func (r Registry) Limits(id string) (l Limits, ok bool) {
	p, ok := r.partners[id]
	return p.limits, ok
}

// Ordered reports whether partner id gets the events of one escrow
// strictly in sequence (registry "ordered": true).
func (r Registry) Ordered(id string) bool { return r.partners[id].ordered }

// OrderedPartners returns the IDs of the ordered partners, sorted.
func (r Registry) OrderedPartners() []string {
	var out []string
	for _, id := range r.Partners() {
		if r.partners[id].ordered {
			out = append(out, id)
		}
	}
	return out
}

// lookup returns the partner with the given ID.
func (r Registry) lookup(id string) (partner, bool) {
	p, ok := r.partners[id]
	return p, ok
}

// checkURL parses and validates an endpoint URL. Its errors do not repeat
// the URL, which may carry a partner's token in its query.
func checkURL(raw string, allowHTTP bool) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !allowHTTP {
			return nil, errors.New("must be https (http only when private networks are allowed, in tests)")
		}
	default:
		return nil, errors.New("must be an absolute https URL")
	}
	if u.Hostname() == "" {
		return nil, errors.New("missing host")
	}
	if u.User != nil {
		return nil, errors.New("must not contain credentials")
	}
	if u.Fragment != "" {
		return nil, errors.New("must not contain a fragment")
	}
	return u, nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: data after the top-level value")
	}
	return nil
}

// jsonError describes a decoding failure without quoting the input, which
// could be part of a secret.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("invalid JSON: %s: want %s, found %s", typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: empty or truncated")
	default:
		// Unknown fields: the message quotes the field name only.
		return fmt.Errorf("invalid JSON: %w", err)
	}
}

// ValidPartnerID reports whether id is a well-formed partner ID: 1–64
// letters, digits, '-', '_' or '.'.
func ValidPartnerID(id string) bool { return validPartnerID(id) }

// validPartnerID reports whether id is 1–64 of [A-Za-z0-9._-].
func validPartnerID(id string) bool {
	if id == "" || len(id) > maxPartnerIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// decodeSecret returns the key of a "whsec_<base64>" secret: the standard
// base64 after the prefix, not empty. Like webhook.Verify, it never quotes
// the secret in its error.
func decodeSecret(secret string) ([]byte, error) {
	b64, found := strings.CutPrefix(secret, "whsec_")
	if !found {
		return nil, webhook.ErrInvalidSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return nil, webhook.ErrInvalidSecret
	}
	return key, nil
}
