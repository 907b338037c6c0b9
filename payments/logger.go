package payments

import (
	"context"
	"fmt"
	"log/slog"
)

// stripeLogger routes stripe-go's own log lines to slog, with the secret
// key removed. stripe-go's info lines ("Requesting POST …") go to debug and
// its warnings to warn. Its debug lines (full response bodies: a
// PaymentIntent's client secret, customer details) and its error lines (the
// error's raw JSON, which can embed the same objects) are dropped: the
// caller gets the error, with a text that leaves them out, and logs it.
type stripeLogger struct {
	log    *slog.Logger
	secret string
}

func (l stripeLogger) Debugf(string, ...interface{}) {}
func (l stripeLogger) Errorf(string, ...interface{}) {}

func (l stripeLogger) Infof(format string, v ...interface{}) { l.emit(slog.LevelDebug, format, v) }
func (l stripeLogger) Warnf(format string, v ...interface{}) { l.emit(slog.LevelWarn, format, v) }

func (l stripeLogger) emit(level slog.Level, format string, v []interface{}) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, redact(fmt.Sprintf(format, v...), l.secret), "via", "stripe-go")
}
