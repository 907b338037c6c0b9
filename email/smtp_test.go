package email_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
)

const (
	from   = "Example Escrow <escrow@mail.example.com>"
	domain = "mail.example.com"
)

// newSMTP is an SMTP mailer for url that fails the test if cfg is refused.
func newSMTP(t *testing.T, url string, tc *tls.Config) *email.SMTP {
	t.Helper()
	m, err := email.NewSMTP(email.SMTPConfig{URL: url, From: from, TLSConfig: tc, Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatalf("NewSMTP(%q): %v", url, err)
	}
	return m
}

func TestSMTPDeliversEachKind(t *testing.T) {
	mp := peertest.StartMailpit(t)
	mailer := newSMTP(t, mp.SMTPURL(), nil)
	const to = "jane.doe@example.com"
	for i, tc := range kindCases(to) {
		t.Run(tc.name, func(t *testing.T) {
			mp.DeleteAll(t)
			id := "job-kind-" + tc.data.TaskType()
			if err := mailer.SendMail(context.Background(), handlers.Mail{JobID: id, To: to, Data: tc.data}); err != nil {
				t.Fatalf("SendMail #%d: got error %v, want nil", i, err)
			}
			list := mp.WaitMessages(t, 1)
			got := mp.Message(t, list[0].ID)
			if len(got.To) != 1 || got.To[0].Address != to {
				t.Errorf("to: got %+v, want exactly %s", got.To, to)
			}
			if got.From.Address != "escrow@mail.example.com" || got.From.Name != "Example Escrow" {
				t.Errorf("from: got %+v, want Example Escrow <escrow@mail.example.com>", got.From)
			}
			if got.Subject != tc.subject {
				t.Errorf("subject: got %q, want %q", got.Subject, tc.subject)
			}
			if want := email.MessageID(id, domain); got.MessageID != want {
				t.Errorf("Message-ID: got %q, want %q", got.MessageID, want)
			}
			text := strings.ReplaceAll(got.Text, "\r\n", "\n")
			tc.checkBodies(t, text, got.HTML)
			if ct := strings.Join(got.Headers["Content-Type"], " "); !strings.HasPrefix(ct, "multipart/alternative") {
				t.Errorf("Content-Type: got %q, want multipart/alternative", ct)
			}
		})
	}
}

func TestSMTPMessageIDIsStableAcrossAttempts(t *testing.T) {
	mp := peertest.StartMailpit(t)
	mailer := newSMTP(t, mp.SMTPURL(), nil)
	const to = "jane.doe@example.com"
	ids := []string{"send_release_email:escrow-esc-1-release-aa", "send_release_email:escrow-esc-1-release-aa", "send_release_email:escrow-esc-2-release-aa"}
	for _, id := range ids {
		if err := mailer.SendMail(context.Background(), mail(id, to)); err != nil {
			t.Fatalf("SendMail(%s): %v", id, err)
		}
	}
	list := mp.WaitMessages(t, 3)
	got := map[string]int{}
	for _, m := range list {
		got[m.MessageID]++
	}
	first, other := email.MessageID(ids[0], domain), email.MessageID(ids[2], domain)
	if got[first] != 2 {
		t.Errorf("messages with Message-ID %s (job sent twice): got %d, want 2 (all: %v)", first, got[first], got)
	}
	if got[other] != 1 || first == other {
		t.Errorf("messages with Message-ID %s (another job): got %d, want 1, different from %s", other, got[other], first)
	}
	msg := mp.Message(t, list[0].ID)
	if h := strings.Join(msg.Headers["Message-Id"], ""); !strings.HasPrefix(h, "<") || !strings.HasSuffix(h, "@"+domain+">") {
		t.Errorf("Message-ID header: got %q, want <…@%s>", h, domain)
	}
}

func TestSMTPRequiresSTARTTLSByDefault(t *testing.T) {
	mp := peertest.StartMailpit(t)
	mailer := newSMTP(t, "smtp://"+mp.SMTPAddr(), nil)
	err := mailer.SendMail(context.Background(), mail("job-1", "jane.doe@example.com"))
	if err == nil {
		t.Fatalf("SendMail to a server without STARTTLS: got nil error, want a refusal")
	}
	t.Logf("error: %v", err)
	for _, w := range []string{"STARTTLS", "SMTP_URL", "tls=none", mp.SMTPAddr()} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error: got %q, want it to mention %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "jane.doe@example.com") {
		t.Errorf("error: got %q, want the recipient masked", err)
	}
	if n := len(mp.Messages(t)); n != 0 {
		t.Errorf("messages stored: got %d, want 0", n)
	}
}

func TestSMTPEncrypted(t *testing.T) {
	certFile, keyFile, roots := selfSigned(t)
	for _, tc := range []struct {
		name   string
		scheme string
		flags  []string
	}{
		{"starttls", "smtp://", []string{"--smtp-require-starttls"}},
		{"implicit tls", "smtps://", []string{"--smtp-require-tls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mp := peertest.StartMailpit(t, append([]string{"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile}, tc.flags...)...)
			url := tc.scheme + "user:pw@" + mp.SMTPAddr()
			if err := newSMTP(t, url, &tls.Config{RootCAs: roots}).SendMail(context.Background(), mail("job-tls", "jane.doe@example.com")); err != nil {
				t.Fatalf("SendMail over %s: got error %v, want nil", tc.name, err)
			}
			if got := mp.WaitMessages(t, 1)[0].Subject; got != "Funds released for escrow esc-1" {
				t.Errorf("subject: got %q, want the release subject", got)
			}
			// The system roots do not know the test CA: the send must fail.
			err := newSMTP(t, url, nil).SendMail(context.Background(), mail("job-tls-2", "jane.doe@example.com"))
			if err == nil || errors.Is(err, asynq.SkipRetry) {
				t.Errorf("SendMail to an untrusted certificate: got %v, want a transient error", err)
			}
		})
	}
}

func TestSMTPAuthOnLocalRelay(t *testing.T) {
	mp := peertest.StartMailpit(t)
	mailer := newSMTP(t, "smtp://relay-user:relay%20pw@"+mp.SMTPAddr()+"?tls=none", nil)
	if err := mailer.SendMail(context.Background(), mail("job-auth", "jane.doe@example.com")); err != nil {
		t.Fatalf("SendMail with user and password over tls=none: got error %v, want nil", err)
	}
	if got := len(mp.WaitMessages(t, 1)); got != 1 {
		t.Errorf("messages: got %d, want 1", got)
	}
}

func TestSMTPErrorMapping(t *testing.T) {
	const to = "jane.doe@example.com"
	for _, tc := range []struct {
		name      string
		replies   map[string]string // SMTP command → reply replacing the 2xx
		permanent bool
	}{
		{"550 on RCPT", map[string]string{"RCPT": "550 5.1.1 <jane.doe@example.com>: Recipient address rejected"}, true},
		{"554 after DATA", map[string]string{".": "554 5.7.1 message rejected as spam"}, true},
		{"553 on MAIL", map[string]string{"MAIL": "553 5.7.1 sender not allowed"}, true},
		{"451 on RCPT", map[string]string{"RCPT": "451 4.3.0 try again later, <jane.doe@example.com>"}, false},
		{"452 after DATA", map[string]string{".": "452 4.3.1 insufficient storage"}, false},
		{"421 greeting", map[string]string{"greeting": "421 4.3.2 service not available"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeSMTP(t, tc.replies)
			err := newSMTP(t, "smtp://"+addr+"?tls=none", nil).SendMail(context.Background(), mail("job-err", to))
			if err == nil {
				t.Fatalf("SendMail: got nil error, want one")
			}
			t.Logf("error: %v", err)
			if got := errors.Is(err, asynq.SkipRetry); got != tc.permanent {
				t.Errorf("permanent (errors.Is SkipRetry): got %v, want %v; error %q", got, tc.permanent, err)
			}
			if strings.Contains(err.Error(), to) {
				t.Errorf("error: got %q, want the recipient masked", err)
			}
			if !strings.Contains(err.Error(), "j***@example.com") {
				t.Errorf("error: got %q, want the masked recipient j***@example.com", err)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		addr := peertest.Addr(peertest.FreePort(t))
		err := newSMTP(t, "smtp://"+addr+"?tls=none", nil).SendMail(context.Background(), mail("job-err", to))
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Errorf("SendMail to a closed port: got %v, want a transient error", err)
		}
	})
	t.Run("deadline passed", func(t *testing.T) {
		addr := fakeSMTP(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
		defer cancel()
		time.Sleep(time.Millisecond)
		err := newSMTP(t, "smtp://"+addr+"?tls=none", nil).SendMail(ctx, mail("job-err", to))
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Errorf("SendMail after the deadline: got %v, want a transient error", err)
		}
	})
	t.Run("silent server times out", func(t *testing.T) {
		addr := fakeSMTP(t, map[string]string{"greeting": ""})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := newSMTP(t, "smtp://"+addr+"?tls=none", nil).SendMail(ctx, mail("job-err", to))
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Errorf("SendMail to a silent server: got %v, want a transient error", err)
		}
		// The context's deadline ended it (on the connection too), not the
		// server, which stays silent until the test ends.
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("SendMail to a silent server: got %v, want the context's 300ms deadline to end it", err)
		}
	})
	t.Run("invalid recipient", func(t *testing.T) {
		addr := fakeSMTP(t, nil)
		err := newSMTP(t, "smtp://"+addr+"?tls=none", nil).SendMail(context.Background(), mail("job-err", "not an address"))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("SendMail to an invalid address: got %v, want a permanent error", err)
		}
	})
}

// fakeSMTP is a minimal SMTP server on loopback that answers every command
// with success except those in replies ("greeting", "MAIL", "RCPT", "DATA",
// "." for the end of the data). An empty greeting reply means say nothing.
func fakeSMTP(t *testing.T, replies map[string]string) string {
	t.Helper()
	return peertest.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		lines := bufio.NewScanner(c)
		say := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
		// answer says the reply to cmd, ok unless replies has another, and
		// reports whether it was ok's kind (its first digit): whether the
		// dialogue goes on as usual.
		answer := func(cmd, ok string) bool {
			a, found := replies[cmd]
			if !found {
				a = ok
			}
			say(a)
			return strings.HasPrefix(a, ok[:1])
		}
		if g, found := replies["greeting"]; found && g == "" {
			lines.Scan() // stay silent until the client gives up
			return
		}
		if !answer("greeting", "220 fake ESMTP") {
			return
		}
		for lines.Scan() {
			cmd := strings.ToUpper(strings.Fields(lines.Text() + " x")[0])
			switch cmd {
			case "EHLO":
				say("250-fake greets you")
				say("250 8BITMIME")
			case "HELO", "NOOP", "RSET":
				say("250 ok")
			case "MAIL", "RCPT":
				answer(cmd, "250 ok")
			case "DATA":
				if !answer("DATA", "354 go ahead") {
					continue
				}
				for lines.Scan() && lines.Text() != "." { // the message, up to the lone dot
				}
				answer(".", "250 queued")
			case "QUIT":
				say("221 bye")
				return
			default:
				say("502 not implemented")
			}
		}
	})
}

// selfSigned writes a certificate for 127.0.0.1 and its key to files and
// returns them with a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}
