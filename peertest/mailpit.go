package peertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// MailpitInstall is the command that installs the pinned mailpit.
const MailpitInstall = "go install github.com/axllent/mailpit@v1.33.1"

// Mailpit is a private mailpit process: an SMTP server that keeps every
// message it receives, and an HTTP API to read them back.
type Mailpit struct {
	SMTPPort int
	HTTPPort int

	t    testing.TB
	http *http.Client
	cmd  *exec.Cmd
	out  Buffer // shown only when mailpit fails to start
	done chan struct{}
}

// StartMailpit starts mailpit with SMTP and HTTP on free loopback ports,
// waits until both answer and stops it at cleanup. The SMTP side offers no
// TLS unless extra adds it (e.g. "--smtp-tls-cert", cert, "--smtp-tls-key",
// key). Any user name and password are accepted; without TLS too, unless
// extra requires TLS ("--smtp-require-tls", "--smtp-require-starttls").
func StartMailpit(t testing.TB, extra ...string) *Mailpit {
	t.Helper()
	bin := LookPath(t, "mailpit", MailpitInstall)
	m := &Mailpit{
		SMTPPort: FreePort(t),
		HTTPPort: FreePort(t),
		t:        t,
		http:     &http.Client{Timeout: 5 * time.Second},
		done:     make(chan struct{}),
	}
	args := []string{
		"--disable-version-check",
		"--smtp", Addr(m.SMTPPort),
		"--listen", Addr(m.HTTPPort),
		"--database", filepath.Join(t.TempDir(), "mailpit.db"),
		"--smtp-auth-accept-any",
		"--smtp-disable-rdns",
		"--quiet",
	}
	if !slices.Contains(extra, "--smtp-require-tls") && !slices.Contains(extra, "--smtp-require-starttls") {
		// mailpit refuses to start with both.
		args = append(args, "--smtp-auth-allow-insecure")
	}
	args = append(args, extra...)
	m.cmd = exec.Command(bin, args...)
	m.cmd.Stdout, m.cmd.Stderr = &m.out, &m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start mailpit: %v", err)
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(m.stop)
	if err := m.wait(15 * time.Second); err != nil {
		t.Fatalf("mailpit (smtp %s, http %s): %v; its output:\n%s", m.SMTPAddr(), Addr(m.HTTPPort), err, m.out.String())
	}
	return m
}

// SMTPAddr is the SMTP server's host:port.
func (m *Mailpit) SMTPAddr() string { return Addr(m.SMTPPort) }

// SMTPURL is an SMTP_URL for the server, without TLS: smtp://host:port?tls=none.
func (m *Mailpit) SMTPURL() string { return "smtp://" + m.SMTPAddr() + "?tls=none" }

// APIURL is the base of the HTTP API, http://host:port/api/v1.
func (m *Mailpit) APIURL() string { return "http://" + Addr(m.HTTPPort) + "/api/v1" }

// wait waits until the HTTP side is ready and the SMTP side accepts connections.
func (m *Mailpit) wait(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-m.done:
			return fmt.Errorf("exited early: %v", m.cmd.ProcessState)
		default:
		}
		if err = m.ready(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %s: %w", timeout, err)
}

func (m *Mailpit) ready() error {
	resp, err := m.http.Get("http://" + Addr(m.HTTPPort) + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz answered %s", resp.Status)
	}
	c, err := net.DialTimeout("tcp", m.SMTPAddr(), 200*time.Millisecond)
	if err != nil {
		return err
	}
	return c.Close()
}

// stop asks mailpit to exit, and kills it if it has not within 5 s.
func (m *Mailpit) stop() {
	if m.cmd.Process == nil {
		return
	}
	terminate(m.cmd, m.done, syscall.SIGTERM, 5*time.Second)
}

// MailpitAddress is a name and address as mailpit reports them.
type MailpitAddress struct {
	Name    string
	Address string
}

// MailpitSummary is one entry of /api/v1/messages.
type MailpitSummary struct {
	// ID is mailpit's own ID of the message.
	ID string
	// MessageID is the Message-ID header without the angle brackets.
	MessageID string
	From      MailpitAddress
	To        []MailpitAddress
	Subject   string
	Created   time.Time
}

// MailpitMessage is /api/v1/message/{ID}: one message, parsed.
type MailpitMessage struct {
	ID        string
	MessageID string
	From      MailpitAddress
	To        []MailpitAddress
	Subject   string
	Text      string
	HTML      string
	// Headers are the raw headers, from /api/v1/message/{ID}/headers.
	Headers map[string][]string
}

// Messages lists the stored messages, newest first.
func (m *Mailpit) Messages(t testing.TB) []MailpitSummary {
	t.Helper()
	var list struct {
		Messages []MailpitSummary `json:"messages"`
	}
	m.get(t, "/messages?limit=1000", &list)
	return list.Messages
}

// WaitMessages waits up to 10 s until at least n messages are stored and
// returns them, newest first.
func (m *Mailpit) WaitMessages(t testing.TB, n int) []MailpitSummary {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := m.Messages(t)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit: got %d messages within 10s, want at least %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Message reads one message, with its text and HTML bodies and headers.
func (m *Mailpit) Message(t testing.TB, id string) MailpitMessage {
	t.Helper()
	var msg MailpitMessage
	m.get(t, "/message/"+url.PathEscape(id), &msg)
	m.get(t, "/message/"+url.PathEscape(id)+"/headers", &msg.Headers)
	return msg
}

// DeleteAll deletes every stored message.
func (m *Mailpit) DeleteAll(t testing.TB) {
	t.Helper()
	m.do(t, http.MethodDelete, "/messages", nil)
}

func (m *Mailpit) get(t testing.TB, path string, v any) {
	t.Helper()
	m.do(t, http.MethodGet, path, v)
}

func (m *Mailpit) do(t testing.TB, method, path string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, m.APIURL()+path, nil)
	if err != nil {
		t.Fatalf("mailpit %s %s: %v", method, path, err)
	}
	resp, err := m.http.Do(req)
	if err != nil {
		t.Fatalf("mailpit %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		t.Fatalf("mailpit %s %s: read body: %v", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit %s %s: %s: %s", method, path, resp.Status, body)
	}
	if v == nil {
		return
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("mailpit %s %s: decode: %v", method, path, err)
	}
}
