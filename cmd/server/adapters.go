package main

import (
	"log/slog"

	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payments"
)

// newMailer is SMTP when SMTP_URL is set, else Resend (loadConfig made
// sure one of them and MAIL_FROM are).
func newMailer(cfg config, log *slog.Logger) (handlers.Mailer, error) {
	if cfg.smtpURL != "" {
		return email.NewSMTP(email.SMTPConfig{URL: cfg.smtpURL, From: cfg.mailFrom}, log)
	}
	return email.NewResend(email.ResendConfig{APIKey: cfg.resendKey, From: cfg.mailFrom, BaseURL: cfg.resendBase}, log)
}

// newPayments is the Stripe client of STRIPE_SECRET_KEY (and STRIPE_API_BASE).
func newPayments(cfg config, log *slog.Logger) (handlers.Payments, error) {
	return payments.NewStripe(payments.StripeConfig{SecretKey: cfg.stripeKey, APIBase: cfg.stripeBase}, log)
}
