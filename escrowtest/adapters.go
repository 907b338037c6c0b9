package escrowtest

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// Attempt is one adapter call: when the handler made it, when it returned
// and what it returned.
type Attempt struct {
	Start, End time.Time
	Err        error
}

// Adapters is every adapter the handlers need (mailer, payments, webhook
// sender, audit sink) at once. It records each call under the asynq job ID
// of the handler that made it (from the context), counts the calls that
// succeeded (the effects), fails as told, and can hold calls at a gate (a
// held call has been dequeued and is running in its handler).
type Adapters struct {
	mu       sync.Mutex
	attempts map[string][]Attempt
	done     map[string]int // job ID → successful calls
	payload  map[string]any // job ID → what the handler passed last
	fail     func(id string, attempt int) error
	gate     chan struct{} // non-nil: calls wait until it is closed
	held     map[string]bool
}

// NewAdapters returns adapters that succeed at once.
func NewAdapters() *Adapters {
	return &Adapters{attempts: map[string][]Attempt{}, done: map[string]int{}, payload: map[string]any{}, held: map[string]bool{}}
}

// Deps is the handlers' dependencies with a as every adapter.
func (a *Adapters) Deps(enq handlers.Enqueuer, log *slog.Logger) handlers.Deps {
	return handlers.Deps{Mailer: a, Payments: a, Sender: a, Audit: a, Enqueuer: enq, Logger: log}
}

// FailWith makes every following call return fn(job ID, attempt number
// starting at 1); nil means success. fn may also sleep or panic.
func (a *Adapters) FailWith(fn func(id string, attempt int) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = fn
}

// Hold makes every following call wait in its handler until Release.
func (a *Adapters) Hold() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gate = make(chan struct{})
}

// Release lets the held calls go on.
func (a *Adapters) Release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	close(a.gate)
	a.gate = nil
}

// Held lists the job IDs waiting at the gate now, sorted.
func (a *Adapters) Held() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for id := range a.held {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Attempts returns the calls made for job id, oldest first.
func (a *Adapters) Attempts(id string) []Attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.attempts[id])
}

// Calls is the number of calls made for job id.
func (a *Adapters) Calls(id string) int { return len(a.Attempts(id)) }

// Payload is what the handler of job id passed its adapter last: the
// payload struct for mail and audit, the handlers.Capture, Refund or
// Delivery for the others.
func (a *Adapters) Payload(id string) any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.payload[id]
}

// Forget drops what was recorded for job id.
func (a *Adapters) Forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.attempts, id)
	delete(a.done, id)
	delete(a.payload, id)
}

// Tally compares the acknowledged job IDs with the effects: lost were
// acknowledged and never took effect, doubled took effect more than once.
func (a *Adapters) Tally(acked []string) (effects int, lost, doubled []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range acked {
		n := a.done[id]
		effects += n
		switch {
		case n == 0:
			lost = append(lost, id)
		case n > 1:
			doubled = append(doubled, id)
		}
	}
	return effects, lost, doubled
}

func (a *Adapters) call(ctx context.Context, v any) error {
	id, _ := asynq.GetTaskID(ctx)
	a.mu.Lock()
	gate := a.gate
	if gate != nil {
		a.held[id] = true
	}
	a.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
		a.mu.Lock()
		delete(a.held, id)
		a.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	start := time.Now()
	a.mu.Lock()
	a.payload[id] = v
	n, fail := len(a.attempts[id])+1, a.fail
	a.attempts[id] = append(a.attempts[id], Attempt{Start: start})
	a.mu.Unlock()
	var err error
	if fail != nil {
		err = fail(id, n)
	}
	a.mu.Lock()
	if at := a.attempts[id]; len(at) >= n {
		at[n-1].End, at[n-1].Err = time.Now(), err
	}
	if err == nil {
		a.done[id]++
	}
	a.mu.Unlock()
	return err
}

// SendMail records m.Data.
func (a *Adapters) SendMail(ctx context.Context, m handlers.Mail) error { return a.call(ctx, m.Data) }

// Capture records c.
func (a *Adapters) Capture(ctx context.Context, c handlers.Capture) (handlers.PaymentResult, error) {
	return handlers.PaymentResult{ID: "ch_testkit", Status: "succeeded"}, a.call(ctx, c)
}

// Refund records r.
func (a *Adapters) Refund(ctx context.Context, r handlers.Refund) (handlers.PaymentResult, error) {
	return handlers.PaymentResult{ID: "re_testkit", Status: "succeeded"}, a.call(ctx, r)
}

// Send records d.
func (a *Adapters) Send(ctx context.Context, d partner.Delivery) error { return a.call(ctx, d) }

// WriteAudit records e.
func (a *Adapters) WriteAudit(ctx context.Context, e payloads.AuditLogCreated) error {
	return a.call(ctx, e)
}

// Enqueue makes a an enqueuer too, for a handler's unit test: it records t
// as a call of the job that enqueues it (its ID from ctx) and returns t.ID
// with what FailWith says. Pass a real tasks.Client to StartWorker instead.
func (a *Adapters) Enqueue(ctx context.Context, t *tasks.Task) (string, error) {
	return t.ID, a.call(ctx, t)
}
