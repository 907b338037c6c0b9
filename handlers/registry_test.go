package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/escrowjobs/escrowjobs/devmode"
	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/escrowtest/sample"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// enqueued records the dispute fan-out's jobs.
type enqueued struct{ ids []string }

func (e *enqueued) Enqueue(_ context.Context, t *tasks.Task) (string, error) {
	e.ids = append(e.ids, t.ID)
	return t.ID, nil
}

// The registry (tasks.Types) is the one list of job types: the mux has a
// route for each and no other, each type's sample is a valid payload that
// FromJSON accepts and its handler runs, and the e-mail templates are
// exactly those the registry names.
func TestRegistryMuxSamplesAndTemplatesAgree(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	enq := &enqueued{}
	mux, err := handlers.NewServeMux(handlers.Deps{
		Mailer: devmode.NewMailer(log), Payments: devmode.Payments{Log: log}, Sender: devmode.Sender{Log: log},
		Audit: devmode.NewAudit(log), Enqueuer: enq, Logger: log,
	})
	if err != nil {
		t.Fatalf("NewServeMux: got %v, want nil", err)
	}
	types := tasks.Types()
	if len(types) != 9 {
		t.Errorf("registry: got %d types, want 9", len(types))
	}
	var templates []string
	for i, typ := range types {
		t.Run(typ.Name, func(t *testing.T) {
			if _, pattern := mux.Handler(asynq.NewTask(typ.Name, nil)); pattern != typ.Name {
				t.Errorf("mux route: got %q, want %q", pattern, typ.Name)
			}
			p := typ.Sample("reg-1")
			if p.TaskType() != typ.Name {
				t.Fatalf("sample: got a %s payload, want %s", p.TaskType(), typ.Name)
			}
			if got := sample.Payload(i, "reg-1"); got.TaskType() != typ.Name {
				t.Errorf("sample.Payload(%d): got %s, want the registry's %s", i, got.TaskType(), typ.Name)
			}
			if q, d := payloads.QueueOf(p), payloads.TimeoutOf(p); q != typ.Queue || d != typ.Timeout {
				t.Errorf("defaults: got queue %q timeout %v, want the payload's %q %v", typ.Queue, typ.Timeout, q, d)
			}
			raw, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			task, err := tasks.FromJSON(typ.Name, raw)
			if err != nil {
				t.Fatalf("FromJSON of the sample: got %v, want nil", err)
			}
			if task.Type() != typ.Name || task.Queue != typ.Queue {
				t.Errorf("FromJSON: got type %s queue %s, want %s %s", task.Type(), task.Queue, typ.Name, typ.Queue)
			}
			if err := mux.ProcessTask(context.Background(), asynq.NewTask(typ.Name, raw)); err != nil {
				t.Errorf("the handler of the sample: got %v, want nil", err)
			}
			_, renderErr := email.Render(handlers.Mail{JobID: task.ID, To: "jane@example.com", Data: p})
			switch {
			case typ.Template != "" && renderErr != nil:
				t.Errorf("template %q: got %v, want the sample rendered", typ.Template, renderErr)
			case typ.Template == "" && !errors.Is(renderErr, asynq.SkipRetry):
				t.Errorf("no template: Render got %v, want a permanent error", renderErr)
			}
		})
		if typ.Template != "" {
			templates = append(templates, typ.Template)
		}
	}
	if got := email.Templates(); !slices.Equal(got, templates) {
		t.Errorf("email.Templates: got %v, want the registry's %v", got, templates)
	}
	if _, pattern := mux.Handler(asynq.NewTask("no_such_type", nil)); pattern != "" {
		t.Errorf("mux route of an unregistered type: got %q, want none", pattern)
	}
	if len(enq.ids) == 0 {
		t.Error("the dispute fan-out enqueued nothing, want its e-mails and webhook")
	}
}
