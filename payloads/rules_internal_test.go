package payloads

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/go-playground/validator/v10"
)

// The rules as first written: isID and isPaymentIntent must agree with
// them on every input.
var (
	idPattern            = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	paymentIntentPattern = regexp.MustCompile(`^pi_[A-Za-z0-9_]{1,120}$`)
)

var idInputs = []string{
	"", "a", "esc_1", "esc-00000001", "a.b_c-D9", strings.Repeat("x", 64), strings.Repeat("x", 65),
	"has space", "tab\t", "new\nline", "é", "名前", "a/b", "a:b", "a\x00", "pi_", "pi_1", "pi_3Mtw_ABC",
	"pi_" + strings.Repeat("a", 120), "pi_" + strings.Repeat("a", 121), "pi_a-b", "pi_a.b", "PI_abc", "xpi_abc",
	"pi_é", "pi_a\n", "\npi_a", "ａ", "a\u200b",
}

func TestIDRulesMatchTheirPatterns(t *testing.T) {
	for _, s := range idInputs {
		if got, want := isID(s), idPattern.MatchString(s); got != want {
			t.Errorf("isID(%q): got %v, want %v", s, got, want)
		}
		if got, want := isPaymentIntent(s), paymentIntentPattern.MatchString(s); got != want {
			t.Errorf("isPaymentIntent(%q): got %v, want %v", s, got, want)
		}
	}
}

// metadataByDecoding is the metadata rule as first written: valid JSON
// that decodes into an object.
func metadataByDecoding(b []byte) bool {
	if len(b) > MaxMetadataBytes || !json.Valid(b) {
		return false
	}
	var obj map[string]json.RawMessage
	return json.Unmarshal(b, &obj) == nil
}

var metadataInputs = []string{
	``, `{}`, ` {"a":1} `, "\n\t{\"a\":[1,2,{\"b\":null}]}\r\n", `null`, ` null `, `[]`, `[{}]`, `"s"`, `1`, `true`,
	`{"a":1`, `{"a":1}}`, `{"a":1}{}`, `{"a":"\xff"}`, `{"\xff":1}`, `{"a":1,"a":2}`, `nul`, `{` + strings.Repeat(" ", MaxMetadataBytes) + `}`,
}

func TestMetadataRuleMatchesDecoding(t *testing.T) {
	for _, s := range metadataInputs {
		if got, want := isMetadata([]byte(s)), metadataByDecoding([]byte(s)); got != want {
			t.Errorf("isMetadata(%q): got %v, want %v", s, got, want)
		}
	}
}

var emailInputs = []string{
	"jane.doe@example.com", "a@b.co", "a+tag@mail.example.co.uk", "first_last-1@sub-domain.example.org",
	"o'brien@example.ie", `"quoted local"@example.com`, "zoë@exämple.de", "用户@例子.广告", "a@b", "a@b.c0", "a@b.c-",
	"a@-b.com", "a@b-.com", "a@b..com", "a@.b.com", "a@b.com.", ".a@b.com", "a.@b.com", "a..b@c.com", "a@@b.com",
	"@b.com", "a@", "", "a b@c.com", "a@b c.com", "a@b.com\n", "Jane <jane@example.com>", "a@123.com", "a@b.123",
	"a@b.c", "a@x.y.z", "A@EXAMPLE.COM", "a@b.co~m", "a@b_c.com", "a!#$%&'*/=?^`{|}~@example.com",
}

// TestEmailRuleMatchesGoPlayground: the email rule with its fast path
// accepts exactly what go-playground's own email rule accepts.
func TestEmailRuleMatchesGoPlayground(t *testing.T) {
	plain := validator.New()
	for _, s := range emailInputs {
		got, want := validate().Var(s, "email") == nil, plain.Var(s, "email") == nil
		if got != want {
			t.Errorf("email %q: got accepted %v, want %v (isPlainAddress %v)", s, got, want, isPlainAddress(s))
		}
	}
	if !isPlainAddress("jane.doe@example.com") {
		t.Error("isPlainAddress(jane.doe@example.com): got false, want the fast path taken")
	}
}

// FuzzFastRulesMatchTheirOriginals: the rules written as loops (isID,
// isPaymentIntent, isMetadata, the email fast path) decide every input as
// the regexps, the decoding and go-playground's email rule they replace.
func FuzzFastRulesMatchTheirOriginals(f *testing.F) {
	for _, in := range [][]string{idInputs, metadataInputs, emailInputs} {
		for _, s := range in {
			f.Add(s)
		}
	}
	plain := validator.New()
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isID(s), idPattern.MatchString(s); got != want {
			t.Errorf("isID(%q): got %v, want %v", s, got, want)
		}
		if got, want := isPaymentIntent(s), paymentIntentPattern.MatchString(s); got != want {
			t.Errorf("isPaymentIntent(%q): got %v, want %v", s, got, want)
		}
		if got, want := isMetadata([]byte(s)), metadataByDecoding([]byte(s)); got != want {
			t.Errorf("isMetadata(%q): got %v, want %v", s, got, want)
		}
		if isPlainAddress(s) && plain.Var(s, "email") != nil {
			t.Errorf("isPlainAddress(%q): got true, but go-playground refuses it", s)
		}
		if got, want := validate().Var(s, "email") == nil, plain.Var(s, "email") == nil; got != want {
			t.Errorf("email %q: got accepted %v, want %v", s, got, want)
		}
	})
}
