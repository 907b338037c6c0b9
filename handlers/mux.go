package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
)

// Deps are the adapters behind the nine handlers. All are required.
type Deps struct {
	Mailer   Mailer
	Payments Payments
	Sender   Sender
	Audit    AuditSink
	Enqueuer Enqueuer
	Logger   *slog.Logger
	// Now is the clock of the dispute fan-out (nil: time.Now).
	Now func() time.Time
}

// NewServeMux registers the nine handlers and the logging middleware.
func NewServeMux(d Deps) (*asynq.ServeMux, error) {
	var missing []string
	for name, ok := range map[string]bool{
		"Mailer": d.Mailer != nil, "Payments": d.Payments != nil, "Sender": d.Sender != nil,
		"Audit": d.Audit != nil, "Enqueuer": d.Enqueuer != nil, "Logger": d.Logger != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("handlers: missing dependencies %v", missing)
	}
	mux := asynq.NewServeMux()
	mux.Use(Logging(d.Logger))
	email, stripe := NewEmail(d.Mailer), NewStripe(d.Payments)
	register(mux, email.Release)
	register(mux, email.Refund)
	register(mux, email.Dispute)
	register(mux, email.PaymentConfirmed)
	register(mux, stripe.Capture)
	register(mux, stripe.Refund)
	register(mux, NewWebhook(d.Sender).StatusChanged)
	register(mux, NewNotify(d.Enqueuer, d.Now).Resolved)
	register(mux, NewAudit(d.Audit).Created)
	return mux, nil
}

// register adds fn under the task type its payload declares.
func register[P payloads.Payload](mux *asynq.ServeMux, fn func(context.Context, P) error) {
	var zero P
	mux.Handle(zero.TaskType(), Typed(fn))
}

// TaskAttrs are the log attributes of the job in ctx: task_type, task_id,
// queue and attempt (1-based).
func TaskAttrs(ctx context.Context, taskType string) []slog.Attr {
	id, _ := asynq.GetTaskID(ctx)
	q, _ := asynq.GetQueueName(ctx)
	n, _ := asynq.GetRetryCount(ctx)
	return []slog.Attr{slog.String("task_type", taskType), slog.String("task_id", id), slog.String("queue", q), slog.Int("attempt", n+1)}
}

// Logging logs the outcome of every job with its task attributes (errors
// with e-mail addresses masked) and archives jobs of unknown types at once.
func Logging(log *slog.Logger) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			if errors.Is(err, asynq.ErrHandlerNotFound) {
				err = fmt.Errorf("%w: %w", err, asynq.SkipRetry)
			}
			attrs := append(TaskAttrs(ctx, t.Type()), slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
			var wait interface{ WaitUntil() time.Time }
			switch {
			case err == nil:
				log.LogAttrs(ctx, slog.LevelInfo, "job done", attrs...)
			case errors.As(err, &wait):
				// Nothing was done; the job comes back without spending an
				// attempt (a partner's circuit, throttle or limits).
				log.LogAttrs(ctx, slog.LevelDebug, "job waits", append(attrs, slog.String("error", err.Error()))...)
			case errors.Is(err, asynq.SkipRetry):
				log.LogAttrs(ctx, slog.LevelError, "job failed permanently", append(attrs, slog.String("error", payloads.MaskEmailsString(err.Error())))...)
			default:
				log.LogAttrs(ctx, slog.LevelWarn, "job failed", append(attrs, slog.String("error", payloads.MaskEmailsString(err.Error())))...)
			}
			return err
		})
	}
}
