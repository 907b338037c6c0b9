package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
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

// NewServeMux registers the handler of every job type in the registry
// (tasks.Types) and the logging middleware. A registered type without a
// handler, or a handler of a type that is not registered, is an error: the
// process does not start with a job type it cannot run.
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
		slices.Sort(missing)
		return nil, fmt.Errorf("handlers: missing dependencies %v", missing)
	}
	routes := slices.Concat(
		NewEmail(d.Mailer).routes(),
		NewPayment(d.Payments).routes(),
		NewWebhook(d.Sender).routes(),
		NewNotify(d.Enqueuer, d.Now).routes(),
		NewAudit(d.Audit).routes(),
	)
	return newMux(Logging(d.Logger), routes, tasks.Types())
}

// newMux builds the mux of types from routes: exactly one route per type,
// none for a type that is not in types.
func newMux(logging asynq.MiddlewareFunc, routes []route, types []tasks.Type) (*asynq.ServeMux, error) {
	registered := map[string]bool{}
	for _, t := range types {
		registered[t.Name] = true
	}
	byType := map[string]asynq.Handler{}
	for _, r := range routes {
		if !registered[r.taskType] {
			return nil, fmt.Errorf("handlers: a handler for %s: %w", r.taskType, tasks.ErrUnknownType)
		}
		if _, dup := byType[r.taskType]; dup {
			return nil, fmt.Errorf("handlers: two handlers for %s", r.taskType)
		}
		byType[r.taskType] = r.handler
	}
	mux := asynq.NewServeMux()
	mux.Use(logging)
	for _, t := range types {
		h, ok := byType[t.Name]
		if !ok {
			return nil, fmt.Errorf("handlers: no handler for job type %s", t.Name)
		}
		mux.Handle(t.Name, h)
	}
	return mux, nil
}

// TaskAttrs are the log attributes of the job in ctx: task_type, task_id,
// queue and attempt (1-based).
func TaskAttrs(ctx context.Context, taskType string) []slog.Attr {
	return appendTaskAttrs(make([]slog.Attr, 0, 4), ctx, taskType)
}

func appendTaskAttrs(attrs []slog.Attr, ctx context.Context, taskType string) []slog.Attr {
	id, _ := asynq.GetTaskID(ctx)
	q, _ := asynq.GetQueueName(ctx)
	n, _ := asynq.GetRetryCount(ctx)
	return append(attrs, slog.String("task_type", taskType), slog.String("task_id", id), slog.String("queue", q), slog.Int("attempt", n+1))
}

// Logging logs the outcome of every job with its task attributes (errors
// with e-mail addresses masked) and archives jobs of unknown types at once.
// A line the logger's level leaves out costs nothing beyond the check.
func Logging(log *slog.Logger) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			if errors.Is(err, asynq.ErrHandlerNotFound) {
				err = fmt.Errorf("%w: %w", err, asynq.SkipRetry)
			}
			level, msg, mask := slog.LevelInfo, "job done", true
			var wait interface{ WaitUntil() time.Time }
			switch {
			case err == nil:
			case errors.As(err, &wait):
				// Nothing was done; the job comes back without spending an
				// attempt (a partner's circuit, throttle or limits).
				level, msg, mask = slog.LevelDebug, "job waits", false
			case errors.Is(err, asynq.SkipRetry):
				level, msg = slog.LevelError, "job failed permanently"
			default:
				level, msg = slog.LevelWarn, "job failed"
			}
			if !log.Enabled(ctx, level) {
				return err
			}
			var buf [6]slog.Attr
			attrs := append(appendTaskAttrs(buf[:0], ctx, t.Type()), slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
			switch {
			case err == nil:
			case mask:
				attrs = append(attrs, slog.String("error", payloads.MaskEmailsString(err.Error())))
			default:
				attrs = append(attrs, slog.String("error", err.Error()))
			}
			log.LogAttrs(ctx, level, msg, attrs...)
			return err
		})
	}
}
