package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/hibiken/asynq"

	"github.com/escrowjobs/escrowjobs/retry"
)

// DefaultTimeout bounds one delivery: connect, TLS, request and answer.
const DefaultTimeout = 10 * time.Second

// maxResponseBody is how much of a partner's answer is read (then
// discarded); the rest is left unread and the connection dropped.
const maxResponseBody = 64 << 10

// userAgent identifies the sender to partners.
const userAgent = "escrowjobs-webhook/1"

// SenderOptions configures NewSender. The zero value is the production
// setting.
type SenderOptions struct {
	// AllowPrivateNetworks lets the sender connect to loopback, private and
	// link-local addresses. Tests only (WEBHOOK_ALLOW_PRIVATE_NETWORKS).
	AllowPrivateNetworks bool
	// Timeout bounds one delivery; DefaultTimeout when zero.
	Timeout time.Duration
	// Logger receives one debug line per attempt (partner, webhook-id,
	// status, duration; never the body or a secret). Nil discards.
	Logger *slog.Logger
	// Now is the clock of webhook-timestamp; time.Now when nil.
	Now func() time.Time
	// RootCAs verifies partners' certificates; the system roots when nil.
	RootCAs *x509.CertPool
}

// Sender delivers signed webhooks to the partners of a Registry. It
// implements handlers.Sender (package handlers) and is safe for concurrent use.
type Sender struct {
	reg    *Registry
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
}

// NewSender returns a Sender for the partners in reg.
func NewSender(reg *Registry, opts SenderOptions) *Sender {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !opts.AllowPrivateNetworks {
		dialer.Control = refuseNonPublic
	}
	transport := &http.Transport{
		// No Proxy: a proxy would be dialled instead of the partner and
		// the address check would judge the wrong host.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs},
		TLSHandshakeTimeout:    timeout,
		ForceAttemptHTTP2:      true,
		DisableCompression:     true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: maxResponseBody,
	}
	return &Sender{
		reg: reg,
		client: &http.Client{
			Transport: transport,
			Timeout:   timeout,
			// A 3xx is answered as is and fails permanently: a partner
			// moves its endpoint in the registry, not with a redirect.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log: log,
		now: now,
	}
}

// Send posts d.Body to d.PartnerID's endpoint, signed with each of its
// secrets. d.ID is the webhook-id, identical on every attempt; the
// webhook-timestamp is the time of this attempt. The error wraps
// asynq.SkipRetry when retrying cannot help, and is a *retry.AfterError
// when the partner asked for a pause.
func (s *Sender) Send(ctx context.Context, d Delivery) error {
	p, ok := s.reg.lookup(d.PartnerID)
	if !ok {
		return fmt.Errorf("webhook %s: unknown partner %q: %w", d.ID, d.PartnerID, asynq.SkipRetry)
	}
	if err := checkID(d.ID); err != nil {
		return fmt.Errorf("webhook %q to partner %s: %w: %w", d.ID, d.PartnerID, err, asynq.SkipRetry)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url.String(), bytes.NewReader(d.Body))
	if err != nil {
		return fmt.Errorf("webhook %s to partner %s: build request: %w", d.ID, d.PartnerID, asynq.SkipRetry)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if err := p.signer.Sign(req.Header, d.ID, s.now(), d.Body); err != nil {
		return fmt.Errorf("webhook %q to partner %s: %w: %w", d.ID, d.PartnerID, err, asynq.SkipRetry)
	}

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		err = unwrapURLError(err)
		s.log.DebugContext(ctx, "webhook attempt failed", "partner", d.PartnerID, "webhook_id", d.ID, "err", err, "duration", time.Since(start))
		if errors.Is(err, ErrRefusedAddress) {
			return fmt.Errorf("webhook %s to partner %s: %w: %w", d.ID, d.PartnerID, err, asynq.SkipRetry)
		}
		return fmt.Errorf("webhook %s to partner %s: %w", d.ID, d.PartnerID, err)
	}
	// Read a bounded part of the answer so a short one lets the connection
	// be reused; a longer one is cut off. Its content does not matter.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()
	s.log.DebugContext(ctx, "webhook attempt", "partner", d.PartnerID, "webhook_id", d.ID, "status", resp.StatusCode, "duration", time.Since(start))
	return s.outcome(d, resp)
}

// outcome maps a partner's answer onto the retry policy.
func (s *Sender) outcome(d Delivery, resp *http.Response) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		return nil
	case code >= 300 && code <= 399:
		return fmt.Errorf("webhook %s: partner %s answered %d (redirects are not followed): %w", d.ID, d.PartnerID, code, asynq.SkipRetry)
	case code == http.StatusGone:
		return fmt.Errorf("webhook %s: partner %s answered %d (endpoint gone): %w", d.ID, d.PartnerID, code, asynq.SkipRetry)
	case code == http.StatusRequestTimeout, code == http.StatusConflict, code == http.StatusTooEarly:
		return fmt.Errorf("webhook %s: partner %s answered %d", d.ID, d.PartnerID, code)
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable:
		err := fmt.Errorf("webhook %s: partner %s answered %d", d.ID, d.PartnerID, code)
		return retry.AfterHeader(resp.Header.Get("Retry-After"), s.now(), err)
	case code >= 400 && code <= 499:
		return fmt.Errorf("webhook %s: partner %s answered %d: %w", d.ID, d.PartnerID, code, asynq.SkipRetry)
	default:
		return fmt.Errorf("webhook %s: partner %s answered %d", d.ID, d.PartnerID, code)
	}
}

// unwrapURLError drops the *url.Error around a transport error: it repeats
// the endpoint URL, whose query may carry a partner's token.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
