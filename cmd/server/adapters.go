package main

import (
	"log/slog"

	"github.com/escrowjobs/escrowjobs/handlers"
)

func newMailer(cfg config, log *slog.Logger) (handlers.Mailer, error) { return nil, errNotWired }

func newPayments(cfg config, log *slog.Logger) (handlers.Payments, error) { return nil, errNotWired }
