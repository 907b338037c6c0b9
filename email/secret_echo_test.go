package email_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/email"
)

// TestParseSMTPURLNeverEchoesThePassword feeds passwords that were not
// percent-encoded and break url.Parse (or make it see the password as the
// host, port, path or query): no part of the password may appear in the error.
func TestParseSMTPURLNeverEchoesThePassword(t *testing.T) {
	for _, pw := range []string{
		"Zq%zzSecret7",    // invalid escape: url.Parse quotes "%zz" and what follows
		"Zq/Secret7x",     // the authority ends at '/': "u:Zq" is taken as host:port
		"Zq?Secret7x",     // '?' starts the query
		"Zq#Secret7x",     // '#' starts the fragment
		"Zq:Secret7x",     // a second ':'
		"Zq Secret7x",     // a space
		"Zq[Secret7x]",    // brackets
		"Zq\x7fSecret7x",  // a control character
		"1?tls=Secret7x",  // becomes the query
		"1?Secret7x=none", // becomes an unknown parameter
		"1/Secret7x",      // becomes the path
		"Secret7x%",       // a trailing '%'
		"99999/Secret7x",  // a bad port followed by the rest
	} {
		for _, raw := range []string{
			"smtp://user:" + pw + "@mail.example.com:587",
			"smtps://user:" + pw + "@mail.example.com",
		} {
			_, err := email.ParseSMTPURL(raw)
			if err == nil {
				// url.Parse may accept it as something else entirely; only
				// an error can echo. Check the parse did not keep it as a
				// host or parameter silently either.
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, "SMTP_URL") {
				t.Errorf("ParseSMTPURL(%q): got %q, want it to name SMTP_URL", raw, msg)
			}
			for _, part := range []string{"Secret7x", "Secret7", "Zq"} {
				if strings.Contains(msg, part) {
					t.Errorf("ParseSMTPURL(%q): got %q, want no part of the password (%q) in it", raw, msg, part)
				}
			}
			if strings.Contains(msg, url.QueryEscape(pw)) {
				t.Errorf("ParseSMTPURL(%q): got %q, want the escaped password left out too", raw, msg)
			}
		}
	}
}

// TestResendBaseNeedsHTTPSOffLoopback: RESEND_API_BASE carries the API key
// in a header, so plain http is for a loopback test peer only. The rule
// (which hosts are loopback) is tested where it lives, internal/apiurl;
// this shows NewResend applies it and names its variable.
func TestResendBaseNeedsHTTPSOffLoopback(t *testing.T) {
	if _, err := email.NewResend(email.ResendConfig{APIKey: "re_test_123", From: from, BaseURL: "http://127.0.0.1:8080/"}, nil); err != nil {
		t.Errorf("NewResend(BaseURL http://127.0.0.1:8080/): got %v, want nil", err)
	}
	_, err := email.NewResend(email.ResendConfig{APIKey: "re_test_123", From: from, BaseURL: "http://api.resend.com/"}, nil)
	if err == nil || !strings.Contains(err.Error(), "RESEND_API_BASE") || !strings.Contains(err.Error(), "https") {
		t.Errorf("NewResend(BaseURL http://api.resend.com/): got %v, want an error naming RESEND_API_BASE and https", err)
	}
}
