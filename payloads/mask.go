package payloads

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RecipientHash stands in for an e-mail address in dedupe keys and job IDs:
// the first 16 hex digits of the SHA-256 of the trimmed, lower-cased address.
func RecipientHash(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:8])
}

// The free-text pattern finds every address form the validator accepts
// (its `email` rule: RFC 5322 dot-atoms with non-ASCII letters, quoted
// local parts holding spaces or '@', IDN domains), and errs on the side of
// masking more. In a dot-atom it takes every character an address may
// hold (slashes, equals signs and apostrophes included), so "o'brien@…"
// is masked whole, and dots anywhere, so an address the validator refuses
// as a typo ("jane.@example.com", "jane..doe@example.com") is masked whole
// too wherever it is echoed (an error, an unknown field's name).
const (
	// the validator's non-ASCII ranges, plus every letter, digit and mark
	addrUnicode = `\p{L}\p{N}\p{M}\x{00A0}-\x{D7FF}\x{F900}-\x{FDCF}\x{FDF0}-\x{FFEF}`
	domainChar  = `[A-Za-z0-9` + addrUnicode + `]`
	localChar   = "[.A-Za-z0-9!#$%&'*+/=?^_`{|}~" + `\-` + addrUnicode + `]`
	emailRegexp = `(?:"(?:[^"\\\r\n]|\\.)*"|` + localChar + `+)` +
		`@` + domainChar + `(?:[.~\-` + addrUnicode + `A-Za-z0-9]*` + domainChar + `)?`
)

var (
	emailPattern = regexp.MustCompile(emailRegexp)
	// quotedPattern finds a Go- or JSON-quoted string in text (an error
	// built with %q): its escapes are undone before masking.
	quotedPattern = regexp.MustCompile(`"(?:[^"\\\n]|\\.)*"`)
)

// MaskEmail keeps the first character of the local part and the domain:
// "jane.doe@example.com" becomes "j***@example.com", `"jane doe"@example.com`
// becomes `"***@example.com`. Text without an '@' becomes "***".
func MaskEmail(email string) string {
	i := strings.LastIndex(email, "@")
	if i <= 0 {
		return "***"
	}
	r, _ := utf8.DecodeRuneInString(email)
	return string(r) + "***" + email[i:]
}

// MaskEmails masks every e-mail address found in b (an error message, a log
// line, any text) and returns the result. For JSON prefer MaskedJSON or
// MaskPayload, which decode it first.
func MaskEmails(b []byte) []byte {
	return []byte(MaskEmailsString(string(b)))
}

// MaskEmailsString masks every e-mail address found in s: plain, or inside
// a quoted string with escapes (%q, JSON), whatever form the validator
// accepts.
func MaskEmailsString(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	if strings.Contains(s, `\`) {
		s = quotedPattern.ReplaceAllStringFunc(s, func(q string) string {
			if !strings.Contains(q, `\`) || !strings.Contains(q, "@") {
				return q
			}
			u, err := strconv.Unquote(q)
			if err != nil {
				return q
			}
			if m := maskText(u); m != u {
				return strconv.Quote(m)
			}
			return q
		})
	}
	return maskText(s)
}

// maskText masks the addresses of s. An address already masked stays as it
// is (a masked quoted local part leaves "***@…" behind its quote).
func maskText(s string) string {
	return emailPattern.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "***@") {
			return m
		}
		return MaskEmail(m)
	})
}

// MaskedJSON masks the e-mail addresses in b and returns it as JSON. JSON
// is decoded first, so escapes cannot hide an address: every string (and
// key) is masked as text, and a field whose name ends in "email" (any
// case, e.g. "buyerEmail") is masked whatever it holds. Anything else is
// masked as text and returned as a JSON string (garbage that was put in a
// queue still shows readably). For a payload of a known type prefer
// MaskPayload.
func MaskedJSON(b []byte) json.RawMessage { return maskJSON(b, nil) }

// MaskPayload is MaskedJSON for a payload of p's type (p is typically its
// zero value): the fields p's struct declares addresses (AddressFields)
// are masked whatever they hold, the rest as in MaskedJSON.
func MaskPayload(p Payload, b []byte) json.RawMessage { return maskJSON(b, AddressFields(p)) }

// AddressFields lists the JSON names of p's e-mail address fields: the
// fields its struct validates with the `email` rule (also through an
// alias such as `recipient`).
func AddressFields(p Payload) []string {
	t := reflect.TypeOf(p)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var fields []string
	for i := range t.NumField() {
		f := t.Field(i)
		if slices.Contains(rules(f.Tag.Get("validate")), "email") {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			fields = append(fields, name)
		}
	}
	return fields
}

// isAddressKey reports whether a JSON key names an address field: one of
// fields, or any key ending in "email".
func isAddressKey(key string, fields []string) bool {
	return slices.Contains(fields, key) || strings.HasSuffix(strings.ToLower(key), "email")
}

// maskJSON rewrites b token by token, keeping the order of keys and the
// numbers as written. Fields named in address (at any depth) are masked
// whole.
func maskJSON(b []byte, address []string) json.RawMessage {
	if !json.Valid(b) {
		q, _ := json.Marshal(MaskEmailsString(string(b)))
		return q
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out bytes.Buffer
	out.Grow(len(b))
	// per open container: is it an object, and is the next string a key
	type frame struct{ object, key bool }
	var stack []frame
	pendingAddress := false
	needComma := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil { // json.Valid said otherwise; be safe
			q, _ := json.Marshal(MaskEmailsString(string(b)))
			return q
		}
		top := len(stack) - 1
		isKey := top >= 0 && stack[top].object && stack[top].key
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			out.WriteByte(byte(d))
			stack = stack[:top]
			needComma = true
			pendingAddress = false
			if top > 0 && stack[top-1].object {
				stack[top-1].key = true
			}
			continue
		}
		if needComma {
			out.WriteByte(',')
		}
		needComma = false
		switch v := tok.(type) {
		case json.Delim:
			out.WriteByte(byte(v))
			stack = append(stack, frame{object: v == '{', key: v == '{'})
			continue
		case string:
			if isKey {
				k, _ := json.Marshal(MaskEmailsString(v))
				out.Write(k)
				out.WriteByte(':')
				stack[top].key = false
				pendingAddress = isAddressKey(v, address)
				continue
			}
			if pendingAddress {
				v = MaskEmail(v)
			} else {
				v = MaskEmailsString(v)
			}
			s, _ := json.Marshal(v)
			out.Write(s)
		case json.Number:
			out.WriteString(v.String())
		case bool:
			out.WriteString(strconv.FormatBool(v))
		case nil:
			out.WriteString("null")
		}
		pendingAddress = false
		needComma = true
		if top >= 0 && stack[top].object {
			stack[top].key = true
		}
	}
	return out.Bytes()
}
