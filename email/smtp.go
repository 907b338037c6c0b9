package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
	gomail "github.com/wneessen/go-mail"
)

// DefaultSMTPTimeout bounds one SMTP delivery when SMTPConfig.Timeout is 0.
const DefaultSMTPTimeout = 30 * time.Second

// SMTPConfig configures an SMTP mailer.
type SMTPConfig struct {
	// URL is SMTP_URL; see ParseSMTPURL.
	URL string
	// From is MAIL_FROM, the sender: "escrow@example.com" or
	// "Example Escrow <escrow@example.com>". Its domain is the right-hand
	// side of every Message-ID.
	From string
	// TLSConfig replaces the default TLS settings (system roots, server
	// name from SMTP_URL, TLS 1.2 or later) when set.
	TLSConfig *tls.Config
	// Timeout bounds one delivery from dial to QUIT; 0 is
	// DefaultSMTPTimeout. A context deadline that comes sooner wins.
	Timeout time.Duration
}

// SMTP delivers mails through an SMTP server with go-mail, one connection
// per mail. It is safe for concurrent use.
type SMTP struct {
	server  SMTPServer
	from    *netmail.Address
	domain  string
	tls     *tls.Config
	timeout time.Duration
	log     *slog.Logger
}

var _ handlers.Mailer = (*SMTP)(nil)

// NewSMTP checks cfg and returns an SMTP mailer. It does not connect. log
// receives one line per delivered mail; nil discards them.
func NewSMTP(cfg SMTPConfig, log *slog.Logger) (*SMTP, error) {
	server, err := ParseSMTPURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	from, domain, err := parseFrom(cfg.From)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tc = cfg.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = server.Host
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultSMTPTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SMTP{server: server, from: from, domain: domain, tls: tc, timeout: timeout, log: log}, nil
}

// parseFrom parses MAIL_FROM and returns it with its domain.
func parseFrom(raw string) (*netmail.Address, string, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, "", errors.New("MAIL_FROM is empty: want the sender address, e.g. escrow@example.com")
	}
	from, err := netmail.ParseAddress(raw)
	if err != nil {
		return nil, "", fmt.Errorf("MAIL_FROM %q is not an e-mail address: %w", raw, err)
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	if domain == "" || strings.ContainsAny(domain, "[]") {
		return nil, "", fmt.Errorf("MAIL_FROM %q: want an address at a domain name", raw)
	}
	return from, domain, nil
}

// SendMail renders m and delivers it. The Message-ID is MessageID(m.JobID,
// the sender's domain), the same on every attempt. An SMTP 5xx reply is
// permanent (wraps asynq.SkipRetry); 4xx replies, network errors and
// timeouts are transient.
func (s *SMTP) SendMail(ctx context.Context, m handlers.Mail) error {
	rendered, err := Render(m)
	if err != nil {
		return err
	}
	taskType, to := m.Data.TaskType(), payloads.MaskEmail(m.To)
	msg, err := s.message(m, rendered)
	if err != nil {
		return masked(permanent(fmt.Errorf("smtp: %s to %s: %w", taskType, to, err)))
	}
	timeout := s.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return fmt.Errorf("smtp: %s to %s: %w", taskType, to, context.Cause(ctx))
	}
	client, err := gomail.NewClient(s.server.Host, s.options(timeout)...)
	if err != nil {
		return fmt.Errorf("smtp: %s to %s: client for %s: %w", taskType, to, s.server.Addr(), err)
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if err != nil && msg.IsDelivered() {
		// The server took the mail; only QUIT failed. A retry would deliver it twice.
		s.log.WarnContext(ctx, "email sent, closing the SMTP connection failed",
			"task_id", m.JobID, "task_type", taskType, "to", to, "error", masked(err).Error())
		err = nil
	}
	if err != nil {
		return s.failure(taskType, to, err)
	}
	s.log.InfoContext(ctx, "email sent", "via", "smtp", "task_id", m.JobID, "task_type", taskType, "to", to,
		"subject", rendered.Subject, "message_id", msg.GetMessageID())
	return nil
}

// message builds the multipart (text and HTML) message.
func (s *SMTP) message(m handlers.Mail, r Message) (*gomail.Msg, error) {
	if m.JobID == "" {
		return nil, errors.New("mail has no job ID to derive the Message-ID from")
	}
	to, err := netmail.ParseAddress(m.To)
	if err != nil || to.Name != "" {
		return nil, errors.New("recipient is not a plain e-mail address")
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	msg.ToMailAddress(to)
	msg.Subject(r.Subject)
	msg.SetMessageIDWithValue(MessageID(m.JobID, s.domain))
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, r.HTML)
	return msg, nil
}

// options are the go-mail client options for one delivery.
func (s *SMTP) options(timeout time.Duration) []gomail.Option {
	opts := []gomail.Option{gomail.WithPort(s.server.Port), gomail.WithTimeout(timeout)}
	switch s.server.TLS {
	case StartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(s.tls.Clone()))
	case ImplicitTLS:
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSConfig(s.tls.Clone()))
	case NoTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.server.Username != "" {
		opts = append(opts, gomail.WithUsername(s.server.Username), gomail.WithPassword(s.server.Password))
		if s.server.TLS == NoTLS {
			// tls=none was chosen on purpose: allow PLAIN and LOGIN without TLS
			// when the relay offers nothing better.
			opts = append(opts, gomail.WithOpportunisticSMTPAuth(
				gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1, gomail.SMTPAuthCramMD5,
				gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc))
		} else {
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover))
		}
	}
	return opts
}

// failure classifies a delivery error: an SMTP 5xx reply is permanent,
// everything else transient. The text never shows the recipient.
func (s *SMTP) failure(taskType, to string, err error) error {
	where := fmt.Sprintf("smtp: %s to %s via %s", taskType, to, s.server.Addr())
	if code := smtpCode(err); code >= 500 && code < 600 {
		return masked(permanent(fmt.Errorf("%s: server answered %d: %w", where, code, err)))
	}
	if s.server.TLS == StartTLS && strings.Contains(err.Error(), "does not support STARTTLS") {
		return masked(fmt.Errorf("%s: the server does not offer STARTTLS, which SMTP_URL requires "+
			"(use smtps:// for implicit TLS, or add ?tls=none for a relay on a trusted network): %w", where, err))
	}
	return masked(fmt.Errorf("%s: %w", where, err))
}

// smtpCode is the SMTP reply code behind err, or 0.
func smtpCode(err error) int {
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() != 0 {
		return se.ErrorCode()
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
