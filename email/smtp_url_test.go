package email_test

import (
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/email"
)

func TestParseSMTPURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want email.SMTPServer
	}{
		{"smtp://mail.example.com:587", email.SMTPServer{Host: "mail.example.com", Port: 587, TLS: email.StartTLS}},
		{"smtp://mail.example.com", email.SMTPServer{Host: "mail.example.com", Port: 587, TLS: email.StartTLS}},
		{"smtp://user%40example.com:p%40ss@mail.example.com:2525", email.SMTPServer{Host: "mail.example.com", Port: 2525, Username: "user@example.com", Password: "p@ss", TLS: email.StartTLS}},
		{"smtp://mail.example.com:2525?tls=starttls", email.SMTPServer{Host: "mail.example.com", Port: 2525, TLS: email.StartTLS}},
		{"smtp://127.0.0.1:1025?tls=none", email.SMTPServer{Host: "127.0.0.1", Port: 1025, TLS: email.NoTLS}},
		{"smtp://localhost?tls=none", email.SMTPServer{Host: "localhost", Port: 25, TLS: email.NoTLS}},
		{"smtps://u:p@mail.example.com", email.SMTPServer{Host: "mail.example.com", Port: 465, Username: "u", Password: "p", TLS: email.ImplicitTLS}},
		{"smtp://[::1]:25?tls=none", email.SMTPServer{Host: "::1", Port: 25, TLS: email.NoTLS}},
	} {
		got, err := email.ParseSMTPURL(tc.url)
		if err != nil {
			t.Errorf("ParseSMTPURL(%q): got error %v, want nil", tc.url, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseSMTPURL(%q): got %+v, want %+v", tc.url, got, tc.want)
		}
	}
}

func TestParseSMTPURLErrors(t *testing.T) {
	const secret = "s3cret-pw"
	for _, tc := range []struct {
		url  string
		want string // in the error, besides SMTP_URL
	}{
		{"", "empty"},
		{"mail.example.com:587", "scheme"},
		{"http://mail.example.com", `scheme "http"`},
		{"smtp://", "no host"},
		{"smtp://u:" + secret + "@mail.example.com:0", "port"},
		{"smtp://u:" + secret + "@mail.example.com:99999", "port"},
		{"smtp://u:" + secret + "@mail.example.com:x", "port"},
		{"smtp://u:" + secret + "@mail.example.com?tls=off", "tls="},
		{"smtp://u:" + secret + "@mail.example.com?tls=none&tls=none", "tls given 2 times"},
		{"smtps://u:" + secret + "@mail.example.com?tls=none", "smtps://"},
		{"smtp://u:" + secret + "@mail.example.com?tsl=none", `unknown parameter "tsl"`},
		{"smtp://u:" + secret + "@mail.example.com/path", "path"},
		{"smtp://:" + secret + "@mail.example.com", "user name"},
		{"smtp://u:" + secret + "@mail.example.com:25\x7f", "not a valid URL"},
	} {
		_, err := email.ParseSMTPURL(tc.url)
		if err == nil {
			t.Errorf("ParseSMTPURL(%q): got nil error, want one containing %q", tc.url, tc.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "SMTP_URL") || !strings.Contains(msg, tc.want) {
			t.Errorf("ParseSMTPURL(%q): got error %q, want one naming SMTP_URL and containing %q", tc.url, msg, tc.want)
		}
		if strings.Contains(msg, secret) {
			t.Errorf("ParseSMTPURL(%q): got error %q, want the password left out", tc.url, msg)
		}
	}
}

func TestNewSMTPChecksMailFrom(t *testing.T) {
	for _, from := range []string{"", "not an address", "escrow@[127.0.0.1]"} {
		_, err := email.NewSMTP(email.SMTPConfig{URL: "smtp://127.0.0.1:25?tls=none", From: from}, nil)
		if err == nil || !strings.Contains(err.Error(), "MAIL_FROM") {
			t.Errorf("NewSMTP(From %q): got error %v, want one naming MAIL_FROM", from, err)
		}
	}
}
