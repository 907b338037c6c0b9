package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// Headers every step's job carries: the flow it belongs to and its step
// name (read them with Of).
const (
	HeaderFlow = "escrowjobs-flow"
	HeaderStep = "escrowjobs-step"
)

// ID is the ID of the flow name with key key: "<name>:<key>".
func ID(name, key string) string { return name + ":" + key }

// Of returns the flow and step a job belongs to, from its headers; ok is
// false for a job of no flow.
func Of(headers map[string]string) (flowID, step string, ok bool) {
	flowID, step = headers[HeaderFlow], headers[HeaderStep]
	if flowID == "" || step == "" {
		return "", "", false
	}
	return flowID, step, true
}

// BuildError is the error of Build: what is wrong and where. Step is ""
// for a problem of the flow itself (its name or key). An invalid job
// wraps the constructor's *payloads.ValidationError (errors.As finds it).
type BuildError struct {
	Flow    string
	Step    string
	Field   string
	Message string
	Err     error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	b.WriteString("flow " + quoteOr(e.Flow, "(unnamed)"))
	if e.Step != "" {
		b.WriteString(": step " + quoteOr(e.Step, `""`))
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Message)
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

func quoteOr(s, empty string) string {
	if s == "" {
		return empty
	}
	return fmt.Sprintf("%q", s)
}

// StepOption configures one step.
type StepOption func(*stepDef)

// After makes the step run once every named step has completed. The
// names are regular steps of the same flow (not on-failure steps).
func After(steps ...string) StepOption {
	return func(s *stepDef) { s.after = append(s.after, steps...) }
}

// With passes job options to the step's constructor (tasks.New), e.g.
// tasks.DedupeKey: the step's job ID is the job's own.
func With(opts ...tasks.Option) StepOption {
	return func(s *stepDef) { s.opts = append(s.opts, opts...) }
}

type stepDef struct {
	name      string
	job       tasks.Payload
	onFailure bool
	after     []string
	opts      []tasks.Option
}

// Builder collects the steps of a flow; Build checks them.
type Builder struct {
	name, key string
	steps     []*stepDef
}

// New starts the definition of the flow name with key key (the escrow ID):
// its ID is ID(name, key).
func New(name, key string) *Builder { return &Builder{name: name, key: key} }

// Step adds a step that runs job. Without After it is enqueued when the
// flow starts.
func (b *Builder) Step(name string, job tasks.Payload, opts ...StepOption) *Builder {
	return b.add(name, job, false, opts)
}

// OnFailure adds a step that runs job only when the flow fails (a step is
// dead-lettered), once per flow. It cannot wait for other steps, and no
// step can wait for it.
func (b *Builder) OnFailure(name string, job tasks.Payload, opts ...StepOption) *Builder {
	return b.add(name, job, true, opts)
}

func (b *Builder) add(name string, job tasks.Payload, onFailure bool, opts []StepOption) *Builder {
	s := &stepDef{name: name, job: job, onFailure: onFailure}
	for _, o := range opts {
		o(s)
	}
	b.steps = append(b.steps, s)
	return b
}

// Flow is a checked flow definition, ready to Start or Add.
type Flow struct {
	name, key string
	steps     []step // in an order where every step comes after its dependencies
}

// step is one checked step: its job and its place in the graph.
type step struct {
	Name       string   `json:"name"`
	JobID      string   `json:"jobId"`
	Type       string   `json:"type"`
	Queue      string   `json:"queue"`
	After      []string `json:"after"`
	Dependents []string `json:"dependents"`
	OnFailure  bool     `json:"onFailure"`

	task *tasks.Task // as built, for Start
	spec taskSpec    // what rebuilds it
}

// ID is the flow's ID, "<name>:<key>".
func (f *Flow) ID() string { return ID(f.name, f.key) }

// JobIDs maps each step's name to its job's ID.
func (f *Flow) JobIDs() map[string]string {
	m := make(map[string]string, len(f.steps))
	for _, s := range f.steps {
		m[s.Name] = s.JobID
	}
	return m
}

// Name and Key are the flow's name and key.
func (f *Flow) Name() string { return f.name }
func (f *Flow) Key() string  { return f.key }

// maxNameLen bounds flow names, keys and step names.
const maxNameLen = 100

// validName is 1-maxNameLen characters of letters, digits, '-', '_', '.'
// (a flow's name and key are also not to contain ':' twice ambiguously;
// the key may contain ':').
func validName(s string, colon bool) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		case r == ':' && colon:
		default:
			return false
		}
	}
	return true
}

// Build checks the definition: the flow's name and key, every step's name
// (non-empty, unique among steps and on-failure steps), its After names
// (known regular steps, no cycle, none an on-failure step) and its job
// (tasks.New with the step's options). The error is a *BuildError naming
// the step and the field.
func (b *Builder) Build() (*Flow, error) {
	fail := func(step, field, msg string, err error) (*Flow, error) {
		return nil, &BuildError{Flow: ID(b.name, b.key), Step: step, Field: field, Message: msg, Err: err}
	}
	if !validName(b.name, false) {
		return fail("", "name", fmt.Sprintf("must be 1-%d characters of letters, digits, '-', '_', '.'", maxNameLen), nil)
	}
	if !validName(b.key, true) {
		return fail("", "key", fmt.Sprintf("must be 1-%d characters of letters, digits, '-', '_', '.', ':'", maxNameLen), nil)
	}
	if len(b.steps) == 0 {
		return fail("", "steps", "a flow needs at least one step", nil)
	}
	byName := map[string]*stepDef{}
	for _, s := range b.steps {
		if s.name == "" {
			return fail("", "name", "a step has no name (steps need 1-100 characters of letters, digits, '-', '_', '.')", nil)
		}
		if !validName(s.name, false) {
			return fail(s.name, "name", fmt.Sprintf("must be 1-%d characters of letters, digits, '-', '_', '.'", maxNameLen), nil)
		}
		if _, dup := byName[s.name]; dup {
			return fail(s.name, "name", "two steps have this name (steps and on-failure steps share one namespace)", nil)
		}
		byName[s.name] = s
	}
	for _, s := range b.steps {
		if s.onFailure && len(s.after) > 0 {
			return fail(s.name, "after", "an on-failure step runs when the flow fails; it cannot wait for other steps", nil)
		}
		seen := map[string]bool{}
		for _, a := range s.after {
			d, ok := byName[a]
			switch {
			case !ok:
				return fail(s.name, "after", fmt.Sprintf("unknown step %q", a), nil)
			case d.onFailure:
				return fail(s.name, "after", fmt.Sprintf("%q is an on-failure step; no step can wait for one", a), nil)
			case a == s.name:
				return fail(s.name, "after", "a step cannot wait for itself", nil)
			case seen[a]:
				return fail(s.name, "after", fmt.Sprintf("%q is named twice", a), nil)
			}
			seen[a] = true
		}
	}
	order, cyc := topoOrder(b.steps)
	if cyc != "" {
		return fail(cyc, "after", "the steps wait for each other in a cycle", nil)
	}
	f := &Flow{name: b.name, key: b.key}
	flowID := f.ID()
	index := map[string]int{}
	jobIDs := map[string]string{}
	for _, s := range order {
		if s.job == nil {
			return fail(s.name, "job", "no job", nil)
		}
		t, err := tasks.New(s.job, s.opts...)
		if err != nil {
			var ve *payloads.ValidationError
			if errors.As(err, &ve) {
				fields := make([]string, 0, len(ve.Fields))
				for _, fe := range ve.Fields {
					fields = append(fields, fe.Field)
				}
				return fail(s.name, strings.Join(fields, ", "), err.Error(), err)
			}
			return fail(s.name, "job", err.Error(), err)
		}
		if other, dup := jobIDs[t.ID]; dup {
			return fail(s.name, "job", fmt.Sprintf("has the job ID %s of step %q (give one of them tasks.DedupeKey)", t.ID, other), nil)
		}
		jobIDs[t.ID] = s.name
		h := t.Headers()
		headers := make(map[string]string, len(h)+2)
		for k, v := range h {
			headers[k] = v
		}
		headers[HeaderFlow], headers[HeaderStep] = flowID, s.name
		spec, err := specOf(t, headers)
		if err != nil {
			return fail(s.name, "job", err.Error(), err)
		}
		// Built again with the headers (a second tasks.Headers replaces
		// the caller's, which headers holds), so that Client.Enqueue,
		// which stamps its headers on a copy, keeps them.
		built, err := tasks.New(s.job, append(slices.Clone(s.opts), tasks.Headers(headers))...)
		if err != nil {
			return fail(s.name, "job", err.Error(), err)
		}
		index[s.name] = len(f.steps)
		f.steps = append(f.steps, step{Name: s.name, JobID: t.ID, Type: t.Type(), Queue: t.Queue,
			After: append([]string{}, s.after...), Dependents: []string{}, OnFailure: s.onFailure, task: built, spec: spec})
	}
	for i := range f.steps {
		for _, a := range f.steps[i].After {
			p := &f.steps[index[a]]
			p.Dependents = append(p.Dependents, f.steps[i].Name)
		}
	}
	return f, nil
}

// topoOrder orders steps so that each comes after its dependencies,
// keeping the definition's order where it can; cyc names a step on a
// cycle when there is one.
func topoOrder(steps []*stepDef) (order []*stepDef, cyc string) {
	byName := map[string]*stepDef{}
	for _, s := range steps {
		byName[s.name] = s
	}
	const (
		unseen = iota
		visiting
		done
	)
	mark := map[string]int{}
	var visit func(s *stepDef) string
	visit = func(s *stepDef) string {
		switch mark[s.name] {
		case visiting:
			return s.name
		case done:
			return ""
		}
		mark[s.name] = visiting
		for _, a := range s.after {
			if c := visit(byName[a]); c != "" {
				return c
			}
		}
		mark[s.name] = done
		order = append(order, s)
		return ""
	}
	for _, s := range steps {
		if c := visit(s); c != "" {
			return nil, c
		}
	}
	return order, ""
}

// taskSpec is what rebuilds a step's job when the flow enqueues it later:
// everything asynq needs, as the job was built.
type taskSpec struct {
	Type        string            `json:"type"`
	Payload     json.RawMessage   `json:"payload"`
	ID          string            `json:"id"`
	Queue       string            `json:"queue"`
	TimeoutMS   int64             `json:"timeoutMs,omitempty"`
	MaxRetry    int               `json:"maxRetry"`
	RetentionMS int64             `json:"retentionMs,omitempty"`
	DelayMS     int64             `json:"delayMs,omitempty"`   // tasks.ProcessIn: counted from the step's enqueue
	ProcessAt   *time.Time        `json:"processAt,omitempty"` // tasks.ProcessAt
	Headers     map[string]string `json:"headers"`
}

// specOf reads t's options (as package outbox does).
func specOf(t *tasks.Task, headers map[string]string) (taskSpec, error) {
	s := taskSpec{Type: t.Type(), ID: t.ID, Queue: t.Queue, Headers: headers, MaxRetry: -1}
	if json.Valid(t.Payload()) {
		s.Payload = json.RawMessage(t.Payload())
	} else {
		return s, fmt.Errorf("payload of %s is not JSON", t.ID)
	}
	for _, o := range t.Options() {
		switch o.Type() {
		case asynq.TaskIDOpt:
			s.ID = o.Value().(string)
		case asynq.QueueOpt:
			s.Queue = o.Value().(string)
		case asynq.TimeoutOpt:
			s.TimeoutMS = o.Value().(time.Duration).Milliseconds()
		case asynq.MaxRetryOpt:
			s.MaxRetry = o.Value().(int)
		case asynq.RetentionOpt:
			s.RetentionMS = o.Value().(time.Duration).Milliseconds()
		case asynq.ProcessInOpt:
			s.DelayMS = o.Value().(time.Duration).Milliseconds()
		case asynq.ProcessAtOpt:
			at := o.Value().(time.Time).UTC()
			s.ProcessAt = &at
		default:
			return s, fmt.Errorf("job option %s cannot be stored in a flow", o.String())
		}
	}
	return s, nil
}

// task rebuilds the job, due now (or after its delay).
func (s taskSpec) task(now time.Time) *tasks.Task {
	opts := []asynq.Option{asynq.TaskID(s.ID), asynq.Queue(s.Queue)}
	if s.MaxRetry >= 0 {
		opts = append(opts, asynq.MaxRetry(s.MaxRetry))
	}
	if s.TimeoutMS > 0 {
		opts = append(opts, asynq.Timeout(time.Duration(s.TimeoutMS)*time.Millisecond))
	}
	if s.RetentionMS > 0 {
		opts = append(opts, asynq.Retention(time.Duration(s.RetentionMS)*time.Millisecond))
	}
	ready := now
	switch {
	case s.ProcessAt != nil:
		opts = append(opts, asynq.ProcessAt(*s.ProcessAt))
		ready = *s.ProcessAt
	case s.DelayMS > 0:
		d := time.Duration(s.DelayMS) * time.Millisecond
		opts = append(opts, asynq.ProcessIn(d))
		ready = now.Add(d)
	}
	h := make(map[string]string, len(s.Headers)+1)
	for k, v := range s.Headers {
		h[k] = v
	}
	if _, given := h[tasks.HeaderReadyAt]; !given {
		tasks.SetReadyAt(h, ready)
	}
	return tasks.Stored(asynq.NewTaskWithHeaders(s.Type, s.Payload, h, opts...), s.ID, s.Queue, opts...)
}
