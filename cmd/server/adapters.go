package main

import (
	"log/slog"

	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/payments"
)

// newMailer is SMTP when SMTP_URL is set, else Resend (loadConfig made
// sure one of them and MAIL_FROM are).
// Each delivery is a span of tel: "smtp send", or Resend's HTTP request.
func newMailer(cfg config, tel *telemetry, log *slog.Logger) (handlers.Mailer, error) {
	if cfg.smtpURL != "" {
		m, err := email.NewSMTP(email.SMTPConfig{URL: cfg.smtpURL, From: cfg.mailFrom}, log)
		if err != nil {
			return nil, err
		}
		return observe.Mailer(m, tel.tp, "smtp"), nil
	}
	return email.NewResend(email.ResendConfig{APIKey: cfg.resendKey, From: cfg.mailFrom, BaseURL: cfg.resendBase, HTTPClient: tel.httpClient("resend")}, log)
}

// newPayments is the Stripe client of STRIPE_SECRET_KEY (and STRIPE_API_BASE).
// Each Stripe request is a span of tel.
func newPayments(cfg config, tel *telemetry, log *slog.Logger) (handlers.Payments, error) {
	return payments.NewStripe(payments.StripeConfig{SecretKey: cfg.stripeKey, APIBase: cfg.stripeBase, HTTPClient: tel.httpClient("stripe")}, log)
}
