package payments

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/hibiken/asynq"
	"github.com/stripe/stripe-go/v76"
)

// ErrAuthorizationGone is wrapped by the permanent error of a capture whose
// PaymentIntent's authorization expired (Stripe lets one stand for about
// seven days) or was canceled: the money is not held any more and cannot
// be captured.
var ErrAuthorizationGone = errors.New("authorization expired or canceled")

// textError shows text in place of err's own text and keeps err as the
// cause. It shows a *stripe.Error without its raw JSON (which can carry a
// PaymentIntent with its client secret) and any error without the secret key.
type textError struct {
	err  error
	text string
}

func (e *textError) Error() string { return e.text }

func (e *textError) Unwrap() error { return e.err }

// failure classifies err from the Stripe call described by what ("capture
// pi_123") into a permanent (wraps asynq.SkipRetry) or transient error.
// secret is removed from the text in case a peer echoes it.
func failure(what, secret string, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		// No Stripe answer: network error, timeout, cancelled context, or a
		// body that is not a Stripe error (a proxy's 502 page). All transient.
		// stripe-go's text may quote the body.
		if text := err.Error(); secret != "" && strings.Contains(text, secret) {
			err = &textError{err: err, text: redact(text, secret)}
		}
		return fmt.Errorf("stripe: %s: %w", what, err)
	}
	var header http.Header
	if se.LastResponse != nil {
		header = se.LastResponse.Header
	}
	cause := &textError{err: se, text: redact(describe(se), secret)}
	switch {
	case header.Get("Stripe-Should-Retry") == "true":
		return transient(what, cause, header)
	case header.Get("Stripe-Should-Retry") == "false":
		return permanent(what, cause)
	case se.HTTPStatusCode == http.StatusConflict, se.Code == stripe.ErrorCodeLockTimeout,
		se.HTTPStatusCode == http.StatusTooManyRequests, se.Code == stripe.ErrorCodeRateLimit,
		se.HTTPStatusCode >= 500, se.HTTPStatusCode == http.StatusRequestTimeout:
		return transient(what, cause, header)
	case se.Type == stripe.ErrorTypeCard, se.Type == stripe.ErrorTypeInvalidRequest,
		se.Type == stripe.ErrorTypeIdempotency, se.HTTPStatusCode >= 400:
		// 400 invalid request, 401 bad key, 402 card declined, 403 restricted
		// key, 404 unknown object: the same request fails the same way.
		return permanent(what, cause)
	default:
		return transient(what, cause, header)
	}
}

func permanent(what string, err error) error {
	return fmt.Errorf("stripe: %s: %w: %w", what, err, asynq.SkipRetry)
}

func transient(what string, err error, header http.Header) error {
	return retry.AfterHeader(header.Get("Retry-After"), time.Now(), fmt.Errorf("stripe: %s: %w", what, err))
}

// describe is the text of a Stripe error: "card_error (402, card_declined,
// decline generic_decline): Your card was declined. [req_123]".
func describe(e *stripe.Error) string {
	var b strings.Builder
	b.WriteString(string(e.Type))
	if b.Len() == 0 {
		b.WriteString("stripe error")
	}
	b.WriteString(" (")
	b.WriteString(strconv.Itoa(e.HTTPStatusCode))
	if e.Code != "" {
		b.WriteString(", " + string(e.Code))
	}
	if e.DeclineCode != "" {
		b.WriteString(", decline " + string(e.DeclineCode))
	}
	if e.Param != "" {
		b.WriteString(", param " + e.Param)
	}
	b.WriteString(")")
	if e.Msg != "" {
		b.WriteString(": " + e.Msg)
	}
	if e.RequestID != "" {
		b.WriteString(" [" + e.RequestID + "]")
	}
	return b.String()
}

// redact removes secret from s.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}
