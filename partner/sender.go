package partner

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
	"github.com/escrowjobs/escrowjobs/webhook"
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
	// Watcher, when set, is the live registry (reloaded on change); the
	// registry passed to NewSender is then ignored and may be nil.
	Watcher *Watcher
	// State, when set, gates every delivery per partner (circuit,
	// throttle, limits, disabled) across worker processes.
	State *State
	// WrapTransport, when set, wraps the guarded transport (tracing:
	// observe.Transport). The address check stays in the dialer.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Sender delivers signed webhooks to the partners of a Registry. It
// implements handlers.Sender (package handlers) and is safe for concurrent use.
type Sender struct {
	reg     *Registry
	watcher *Watcher
	state   *State
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
}

// registry is the registry in force.
func (s *Sender) registry() *Registry {
	if s.watcher != nil {
		return s.watcher.Registry()
	}
	return s.reg
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
	var rt http.RoundTripper = transport
	if opts.WrapTransport != nil {
		rt = opts.WrapTransport(transport)
	}
	return &Sender{
		reg: reg,
		client: &http.Client{
			Transport: rt,
			Timeout:   timeout,
			// A 3xx is answered as is and fails permanently: a partner
			// moves its endpoint in the registry, not with a redirect.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:     log,
		now:     now,
		watcher: opts.Watcher,
		state:   opts.State,
	}
}

// Send posts d.Body to d.PartnerID's endpoint, signed with each of its
// secrets. d.ID is the webhook-id, identical on every attempt; the
// webhook-timestamp is the time of this attempt. The error wraps
// asynq.SkipRetry when retrying cannot help, and is a *retry.AfterError
// when the partner asked for a pause.
//
// With SenderOptions.State, the delivery first passes the partner's gate
// (see State): it may instead return a *WaitError (nothing sent, not a
// failed attempt) or ErrEndpointDisabled; its outcome feeds the circuit,
// a Retry-After pauses the whole partner and a 410 Gone disables it.
func (s *Sender) Send(ctx context.Context, d Delivery) error {
	p, ok := s.registry().lookup(d.PartnerID)
	if !ok && s.watcher != nil {
		// The file may have gained the partner since the last poll.
		if _, err := s.watcher.Reload(); err != nil {
			s.log.WarnContext(ctx, "webhook registry reload refused", "error", err)
		}
		p, ok = s.registry().lookup(d.PartnerID)
	}
	if !ok {
		return fmt.Errorf("webhook %s: %w %q: %w", d.ID, ErrUnknownPartner, d.PartnerID, asynq.SkipRetry)
	}
	if err := webhook.CheckID(d.ID); err != nil {
		return fmt.Errorf("webhook %q to partner %s: %w: %w", d.ID, d.PartnerID, err, asynq.SkipRetry)
	}
	if s.state == nil {
		_, _, err := s.post(ctx, d, p)
		return err
	}
	jobID, _ := asynq.GetTaskID(ctx)
	if jobID == "" {
		jobID = d.ID
	}
	if p.ordered && d.TransactionID != "" {
		if err := s.inOrder(ctx, d, jobID); err != nil {
			return err
		}
	}
	a, err := s.admit(ctx, d, jobID, p.limits)
	if err != nil {
		return err
	}
	start := time.Now()
	o, code, err := s.post(ctx, d, p)
	latency := time.Since(start)
	var throttle time.Duration
	if o == verdictThrottled {
		var ra *retry.AfterError
		if errors.As(err, &ra) {
			throttle = ra.After
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	failures, rerr := s.state.record(rctx, d.PartnerID, jobID, a, o, err == nil, latency, throttle)
	if rerr != nil {
		s.log.WarnContext(ctx, "webhook: could not record the outcome; the concurrency slot frees itself after its lease", "partner", d.PartnerID, "error", rerr)
	}
	if err == nil {
		// Delivered: the escrow's next event (to an ordered partner) no
		// longer waits for it; for any partner, so that ordering turned on
		// later finds no stale event ahead.
		s.state.released(rctx, d.TransactionID, d.PartnerID, jobID, s.log)
	}
	switch {
	case code == http.StatusGone:
		if first, derr := s.state.disable(rctx, d.PartnerID, fmt.Sprintf("endpoint answered %d Gone", code), true); derr != nil {
			s.log.ErrorContext(ctx, "webhook: could not disable the partner after 410 Gone", "partner", d.PartnerID, "error", derr)
		} else if first {
			s.log.ErrorContext(ctx, "webhook partner disabled: its endpoint answered 410 Gone; deliveries become dead letters until it is enabled", "partner", d.PartnerID)
		}
		return fmt.Errorf("webhook %s: partner %s answered 410 Gone: %w: %w", d.ID, d.PartnerID, ErrEndpointDisabled, asynq.SkipRetry)
	case rerr == nil && o == verdictTransient && failures == s.state.cfg.BreakerFailures:
		s.log.WarnContext(ctx, "webhook circuit opened: deliveries to the partner wait; one probe per interval", "partner", d.PartnerID,
			"consecutive_failures", failures, "probe_interval", s.state.cfg.BreakerProbe.String())
	case rerr == nil && o == verdictAnswered && a.probe:
		s.log.InfoContext(ctx, "webhook circuit closed: the probe was answered; waiting deliveries flow", "partner", d.PartnerID)
		s.state.wake(rctx, d.PartnerID, s.log)
	}
	return err
}

// inOrder holds back a delivery to an ordered partner while an earlier
// event of its escrow is open: the *WaitError brings it back without
// spending an attempt, woken when the event ahead is released. On the
// job's last attempt, where asynq archives any error, it is an error
// wrapping ErrWaitsInOrder instead: Redelivery requeues that dead letter,
// without a step of its schedule, once the event ahead is released.
func (s *Sender) inOrder(ctx context.Context, d Delivery, jobID string) error {
	w, err := s.state.orderGate(ctx, d.TransactionID, d.PartnerID, jobID, s.log)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", d.ID, err)
	}
	if w == nil {
		return nil
	}
	retried, _ := asynq.GetRetryCount(ctx)
	if maxRetry, ok := asynq.GetMaxRetry(ctx); ok && retried >= maxRetry {
		return fmt.Errorf("webhook %s: last attempt not sent: %w (%s)", d.ID, ErrWaitsInOrder, w.Head)
	}
	s.log.DebugContext(ctx, "webhook waits for an earlier event of its escrow", "partner", d.PartnerID, "task_id", jobID, "head", w.Head, "ahead", w.Ahead)
	return w
}

// admit passes the partner's gate. A wait is returned as a *WaitError,
// except on the job's last attempt: asynq v0.26 archives a job whose last
// attempt returns any error, counted or not. There, a wait for a
// concurrency slot or a rate token (a partner that answers) is spent here,
// while the attempt's deadline leaves room for a delivery; an open circuit
// or a throttle (a partner that is down or asked for a pause) is a
// transient failure at once, so no worker slot waits on it: the job
// becomes a dead letter and Redelivery brings it back on its schedule.
func (s *Sender) admit(ctx context.Context, d Delivery, jobID string, l Limits) (admission, error) {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, hasMax := asynq.GetMaxRetry(ctx)
	last := hasMax && retried >= maxRetry
	for {
		a, err := s.state.admit(ctx, d.PartnerID, jobID, l)
		switch {
		case err != nil:
			return a, fmt.Errorf("webhook %s: %w", d.ID, err)
		case a.disabled:
			return a, fmt.Errorf("webhook %s: partner %s: %w: %w", d.ID, d.PartnerID, ErrEndpointDisabled, asynq.SkipRetry)
		case a.wait == nil:
			return a, nil
		case !last:
			return a, a.wait
		case a.wait.Reason == WaitCircuitOpen || a.wait.Reason == WaitThrottled:
			return a, fmt.Errorf("webhook %s: last attempt not sent: %s", d.ID, a.wait)
		}
		deadline, ok := ctx.Deadline()
		if ok && time.Until(deadline) < s.client.Timeout+time.Second+time.Until(a.wait.Until) {
			return a, fmt.Errorf("webhook %s: last attempt could not start before its deadline: %s", d.ID, a.wait.Reason)
		}
		if !retry.Wait(ctx, time.Until(a.wait.Until)) {
			return a, fmt.Errorf("webhook %s: %w", d.ID, ctx.Err())
		}
	}
}

// post sends one signed request and maps the answer onto the retry policy
// and the circuit's outcome; code is the HTTP status (0 without answer).
func (s *Sender) post(ctx context.Context, d Delivery, p partner) (o verdict, code int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url.String(), bytes.NewReader(d.Body))
	if err != nil {
		return verdictNone, 0, fmt.Errorf("webhook %s to partner %s: build request: %w", d.ID, d.PartnerID, asynq.SkipRetry)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if err := p.signer.Sign(req.Header, d.ID, s.now(), d.Body); err != nil {
		return verdictNone, 0, fmt.Errorf("webhook %q to partner %s: %w: %w", d.ID, d.PartnerID, err, asynq.SkipRetry)
	}

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		err = unwrapURLError(err)
		s.log.DebugContext(ctx, "webhook attempt failed", "partner", d.PartnerID, "webhook_id", d.ID, "err", err, "duration", time.Since(start))
		if errors.Is(err, ErrRefusedAddress) {
			return verdictNone, 0, fmt.Errorf("webhook %s to partner %s: %w: %w", d.ID, d.PartnerID, err, asynq.SkipRetry)
		}
		o := verdictTransient
		if ctx.Err() != nil {
			o = verdictNone // our deadline or shutdown, not the partner's fault
		}
		return o, 0, fmt.Errorf("webhook %s to partner %s: %w", d.ID, d.PartnerID, err)
	}
	// Read a bounded part of the answer so a short one lets the connection
	// be reused; a longer one is cut off. Its content does not matter.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()
	s.log.DebugContext(ctx, "webhook attempt", "partner", d.PartnerID, "webhook_id", d.ID, "status", resp.StatusCode, "duration", time.Since(start))
	err = s.outcome(d, resp)
	var ra *retry.AfterError
	switch {
	case err == nil, errors.Is(err, asynq.SkipRetry):
		o = verdictAnswered
	case errors.As(err, &ra):
		o = verdictThrottled
	default:
		o = verdictTransient
	}
	return o, resp.StatusCode, err
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
