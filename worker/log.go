package worker

import (
	"fmt"
	"log/slog"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// asynqLogger sends asynq's own log lines to slog, e-mails masked.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) msg(args []any) string { return payloads.MaskEmailsString(fmt.Sprint(args...)) }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(a.msg(args)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(a.msg(args)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(a.msg(args)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(a.msg(args)) }

// Fatal is called by asynq only for unrecoverable start-up errors; it must
// not return (asynq's contract), so it logs and panics for the caller.
func (a asynqLogger) Fatal(args ...any) {
	a.l.Error(a.msg(args))
	panic(a.msg(args))
}
