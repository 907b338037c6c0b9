package email

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// TLSMode is how an SMTP connection is encrypted.
type TLSMode int

const (
	// StartTLS upgrades the connection with STARTTLS and refuses to send
	// when the server does not offer it. It is the default of smtp://.
	StartTLS TLSMode = iota
	// ImplicitTLS speaks TLS from the first byte (smtps://).
	ImplicitTLS
	// NoTLS sends in plain text (smtp://…?tls=none), for a relay on the
	// same host or a private network only.
	NoTLS
)

// String is "starttls", "implicit" or "none".
func (m TLSMode) String() string {
	switch m {
	case StartTLS:
		return "starttls"
	case ImplicitTLS:
		return "implicit"
	case NoTLS:
		return "none"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// SMTPServer is a parsed SMTP_URL.
type SMTPServer struct {
	Host string
	Port int
	// Username and Password are empty when the server takes no SMTP AUTH.
	Username string
	Password string
	TLS      TLSMode
}

// Addr is host:port.
func (s SMTPServer) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// ParseSMTPURL parses an SMTP_URL: smtp://[user:pass@]host[:port] (STARTTLS
// required, port 587 by default), smtp://host:port?tls=none (no TLS, port 25
// by default) or smtps://[user:pass@]host[:port] (implicit TLS, port 465 by
// default). User and password are URL-encoded. Errors name SMTP_URL and never
// repeat the password.
func ParseSMTPURL(raw string) (SMTPServer, error) {
	const want = "want smtp://[user:pass@]host:port, smtp://host:port?tls=none or smtps://[user:pass@]host:port"
	if strings.TrimSpace(raw) == "" {
		return SMTPServer{}, errors.New("SMTP_URL is empty: " + want)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, and its cause quotes the part it
		// choked on, which may be the password: keep the cause's words only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		cause, _, _ := strings.Cut(err.Error(), `"`)
		return SMTPServer{}, fmt.Errorf("SMTP_URL is not a valid URL (%s; percent-encode special characters of the user name and password): %s", strings.TrimSpace(cause), want)
	}
	if u.User == nil && strings.Contains(raw, "@") {
		// A '/', '?' or '#' in an unencoded password ends the host early:
		// the password would then be read as host, port, path or query.
		return SMTPServer{}, fmt.Errorf("SMTP_URL is not a valid URL (an '@' after the host: percent-encode '/', '?', '#' and '%%' in the user name and password, e.g. / as %%2F): %s", want)
	}
	var s SMTPServer
	switch u.Scheme {
	case "smtp":
		s.TLS, s.Port = StartTLS, 587
	case "smtps":
		s.TLS, s.Port = ImplicitTLS, 465
	default:
		return SMTPServer{}, fmt.Errorf("SMTP_URL: scheme %q is not supported: %s", u.Scheme, want)
	}
	if u.Opaque != "" || u.Host == "" {
		return SMTPServer{}, fmt.Errorf("SMTP_URL has no host: %s", want)
	}
	if u.Path != "" && u.Path != "/" || u.Fragment != "" {
		return SMTPServer{}, fmt.Errorf("SMTP_URL: a path or fragment is not allowed: %s", want)
	}
	s.Host = u.Hostname()
	if s.Host == "" {
		return SMTPServer{}, fmt.Errorf("SMTP_URL has no host: %s", want)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return SMTPServer{}, fmt.Errorf("SMTP_URL: the query is not valid (%s)", strings.SplitN(err.Error(), `"`, 2)[0])
	}
	for k, vs := range q {
		if k != "tls" {
			return SMTPServer{}, fmt.Errorf("SMTP_URL: unknown parameter %q (only tls=none is known)", k)
		}
		switch {
		case len(vs) != 1:
			return SMTPServer{}, fmt.Errorf("SMTP_URL: tls given %d times", len(vs))
		case vs[0] == "none" && s.TLS == StartTLS:
			s.TLS, s.Port = NoTLS, 25
		case vs[0] == "starttls" && s.TLS == StartTLS:
		case vs[0] == "none" || vs[0] == "starttls":
			return SMTPServer{}, fmt.Errorf("SMTP_URL: tls=%s contradicts smtps://, which is always TLS", vs[0])
		default:
			return SMTPServer{}, fmt.Errorf("SMTP_URL: tls=%q is not supported (want tls=none for a local relay, or no tls parameter for STARTTLS)", vs[0])
		}
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPServer{}, fmt.Errorf("SMTP_URL: port %q is not a number from 1 to 65535", p)
		}
		s.Port = n
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
		if s.Username == "" {
			return SMTPServer{}, fmt.Errorf("SMTP_URL: a password needs a user name")
		}
	}
	return s, nil
}
