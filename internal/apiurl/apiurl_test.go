package apiurl_test

import (
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/internal/apiurl"
)

// The base URL of a keyed API carries the key on every request: https, or
// plain http to a loopback test peer only (the Resend and Stripe adapters
// use this one check; their own tests only show they call it).
func TestParseWantsHTTPSOffLoopback(t *testing.T) {
	const def = "https://api.example.com"
	for _, tc := range []struct {
		base string
		want string // "" = accepted; else a part of the error
	}{
		{"", ""}, // the default
		{"https://api.resend.com/", ""},
		{"https://10.0.0.5:8443/", ""},
		{"https://stripe.internal.example:8443", ""},
		{"http://127.0.0.1:8080/", ""},
		{"http://127.9.9.9:8080/", ""},
		{"http://[::1]:8080/", ""},
		{"http://[::ffff:127.0.0.1]:8080/", ""},
		{"http://localhost:8080/", ""},
		{"http://LOCALHOST.:8080/", ""},
		{"http://api.resend.com/", "want https"},
		{"http://10.0.0.5:8080/", "want https"},
		{"http://192.168.1.10:12111", "want https"},
		{"http://localhost.example.com/", "want https"},
		{"http://127.0.0.1.nip.io/", "want https"},
		{"http://0.0.0.0:8080/", "want https"},
		{"ftp://api.example.com/", "want an http(s) URL such as " + def},
		{"https://", "want an http(s) URL"},
		{"://nope", "want an http(s) URL"},
	} {
		u, err := apiurl.Parse("X_API_BASE", tc.base, def)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Parse(%q): got %v, want it accepted", tc.base, err)
		case tc.want == "" && tc.base == "" && u.String() != def:
			t.Errorf("Parse(\"\"): got %s, want the default %s", u, def)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "X_API_BASE") || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Parse(%q): got %v, want an error naming X_API_BASE and saying %q", tc.base, err, tc.want)
		}
	}
}

// A refused URL's password is not shown.
func TestParseHidesThePasswordOfARefusedURL(t *testing.T) {
	_, err := apiurl.Parse("X_API_BASE", "http://user:s3cret-pw@api.example.com/", "https://api.example.com")
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("got %v, want an error without the password", err)
	}
}
