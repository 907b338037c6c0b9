package payloads

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-playground/validator/v10"
)

// FieldError is one field that failed validation. Field is the JSON name;
// Message never repeats the value (it may be an e-mail address).
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every bad field of one payload.
type ValidationError struct {
	TaskType string       `json:"type,omitempty"`
	Fields   []FieldError `json:"fields"`
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid ")
	if e.TaskType != "" {
		b.WriteString(e.TaskType + " ")
	}
	b.WriteString("payload: ")
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Field + ": " + f.Message)
	}
	return b.String()
}

// Validate checks p against its tags. It returns nil or a *ValidationError
// that names every bad field by its JSON name.
func Validate(p Payload) error {
	err := validate().Struct(p)
	if err == nil {
		return nil
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return fmt.Errorf("validate %s: %w", p.TaskType(), err)
	}
	ve := &ValidationError{TaskType: p.TaskType()}
	for _, fe := range verrs {
		ve.Fields = append(ve.Fields, FieldError{Field: fe.Field(), Message: message(fe)})
	}
	return ve
}

// isID reports whether s is 1-64 characters of letters, digits, '.', '_'
// or '-' (the escrowid rule; ^[A-Za-z0-9._-]{1,64}$). A loop rather than a
// regexp: it runs on every ID of every job, at enqueue and again at decode.
func isID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// isPaymentIntent reports whether s is "pi_" and 1-120 letters, digits or
// '_' (the paymentintent rule; ^pi_[A-Za-z0-9_]{1,120}$).
func isPaymentIntent(s string) bool {
	rest, ok := strings.CutPrefix(s, "pi_")
	if !ok || len(rest) < 1 || len(rest) > 120 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !isAlnum(c) && c != '_' {
			return false
		}
	}
	return true
}

// isMetadata reports whether b is at most MaxMetadataBytes of valid JSON
// whose value is an object (or null): what decodes into a
// map[string]json.RawMessage, checked in one pass without decoding.
func isMetadata(b []byte) bool {
	if len(b) > MaxMetadataBytes || !json.Valid(b) {
		return false
	}
	v := bytes.TrimLeft(b, " \t\r\n")
	return len(v) > 0 && (v[0] == '{' || v[0] == 'n') // valid JSON starting with n is null
}

// isPlainAddress reports whether s is an e-mail address of the common
// shape: a local part of ASCII letters, digits, '.', '_', '+' and '-' (no
// leading, trailing or double dot), '@', and two or more domain labels of
// letters, digits and '-' that start and end with a letter or digit, the
// last one with a letter. go-playground's email rule accepts every such
// address; isPlainAddress answers without its parser and regexp, and false
// only means "not this shape".
func isPlainAddress(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; !isAlnum(c) && c != '.' && c != '_' && c != '+' && c != '-' {
			return false
		}
	}
	labels, last := 0, ""
	for rest, more := domain, true; more; labels++ {
		last, rest, more = strings.Cut(rest, ".")
		if last == "" || last[0] == '-' || last[len(last)-1] == '-' {
			return false
		}
		for i := 0; i < len(last); i++ {
			if c := last[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return labels >= 2 && isLetter(last[0]) && isLetter(last[len(last)-1])
}

// isLetter reports whether c is an ASCII letter.
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

var statuses = []string{StatusPending, StatusFunded, StatusReleased, StatusRefunded, StatusDisputed, StatusResolved, StatusCancelled}

// maxAmount caps every money amount, in minor units (one billion of a
// two-decimal currency): anything larger is a producer's bug, not a payment.
const maxAmount = 100_000_000_000

// aliases name the rules several payloads share, so each is written once:
//
//   - recipient: a customer's e-mail address: required, at most 254
//     characters, a valid address, nothing that could break a mail header;
//   - amount: a money amount in minor units, above 0, at most maxAmount;
//   - amountorall: the same or 0 (omitted), which means all of it (the
//     full authorised amount, or whatever remains to refund).
//
// A failure is reported as the rule inside the alias that failed
// ([message] reads the actual tag), so the messages are the plain rules'.
// Never written after start.
var aliases = map[string]string{
	"recipient":   "required,max=254,email,noheaderbreak",
	"amount":      "gt=0,lte=" + strconv.FormatInt(maxAmount, 10),
	"amountorall": "gte=0,lte=" + strconv.FormatInt(maxAmount, 10),
}

// rules lists the rules of a validate tag, aliases expanded.
func rules(tag string) []string {
	var out []string
	for _, r := range strings.Split(tag, ",") {
		if expanded, ok := aliases[r]; ok {
			r = expanded
		}
		out = append(out, strings.Split(r, ",")...)
	}
	return out
}

// validate builds the validator once; it is never changed afterwards.
var validate = sync.OnceValue(func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			return f.Name
		}
		return name
	})
	custom := map[string]validator.Func{
		"escrowid":      func(fl validator.FieldLevel) bool { return isID(fl.Field().String()) },
		"paymentintent": func(fl validator.FieldLevel) bool { return isPaymentIntent(fl.Field().String()) },
		"noheaderbreak": func(fl validator.FieldLevel) bool {
			return !strings.ContainsFunc(fl.Field().String(), func(r rune) bool { return unicode.IsControl(r) || invisible(r) })
		},
		"bodytext": func(fl validator.FieldLevel) bool {
			return !strings.ContainsFunc(fl.Field().String(), func(r rune) bool {
				return unicode.IsControl(r) && r != '\n' && r != '\t' || invisible(r)
			})
		},
		"escrowstatus": func(fl validator.FieldLevel) bool {
			s := fl.Field().String()
			for _, st := range statuses {
				if s == st {
					return true
				}
			}
			return false
		},
		"rfc3339": func(fl validator.FieldLevel) bool {
			_, err := time.Parse(time.RFC3339, fl.Field().String())
			return err == nil
		},
		"metadata": func(fl validator.FieldLevel) bool { return isMetadata(fl.Field().Bytes()) },
	}
	// email: the common shape of address is checked by isPlainAddress;
	// anything else by go-playground's own rule (net/mail and its regexp),
	// kept in a validator of its own. The rule accepts exactly what
	// go-playground's does (FuzzFastRulesMatchTheirOriginals).
	plain := validator.New()
	custom["email"] = func(fl validator.FieldLevel) bool {
		s := fl.Field().String()
		return isPlainAddress(s) || plain.Var(s, "email") == nil
	}
	for tag, fn := range custom {
		if err := v.RegisterValidation(tag, fn); err != nil {
			panic(err) // a programming error in the table above
		}
	}
	for alias, tags := range aliases {
		v.RegisterAlias(alias, tags)
	}
	return v
})

// invisible reports whether r changes how text reads without being seen:
// bidi embeddings, overrides, isolates and marks, zero-width and other
// format characters (Unicode category Cf), and the line and paragraph
// separators. The zero-width (non-)joiners U+200C and U+200D are allowed:
// Persian, Indic scripts and emoji sequences need them.
func invisible(r rune) bool {
	switch r {
	case '\u200c', '\u200d':
		return false
	case '\u2028', '\u2029':
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

// message says what the rule that failed wants (the rule itself, also
// inside an alias).
func message(fe validator.FieldError) string {
	switch fe.ActualTag() {
	case "required":
		return "is required"
	case "required_unless":
		if fe.Field() == "refundId" {
			return "is required for a partial refund (amount set): the caller's reference for this refund"
		}
		return "is required unless " + lowerFirst(fe.Param())
	case "escrowid":
		return "must be 1-64 characters of letters, digits, '-', '_' or '.'"
	case "paymentintent":
		return "must be a Stripe PaymentIntent ID (pi_…)"
	case "email":
		return "must be a valid e-mail address"
	case "noheaderbreak":
		return "must not contain line breaks, control characters or invisible formatting characters (such as bidi overrides)"
	case "bodytext":
		return "must not contain control characters or invisible formatting characters (such as bidi overrides)"
	case "iso4217":
		return "must be an upper-case ISO 4217 currency code"
	case "escrowstatus":
		return "must be one of " + strings.Join(statuses, ", ")
	case "rfc3339":
		return "must be an RFC 3339 timestamp"
	case "metadata":
		return fmt.Sprintf("must be a JSON object of at most %d bytes", MaxMetadataBytes)
	case "oneof":
		return "must be one of " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "nefield":
		return "must differ from " + lowerFirst(fe.Param())
	case "gt":
		return "must be greater than " + fe.Param()
	case "gte":
		return "must be at least " + fe.Param()
	case "lte":
		return "must be at most " + fe.Param()
	case "max":
		return "must be at most " + fe.Param() + " characters"
	}
	return "failed " + fe.ActualTag()
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
