package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/escrowjobs/escrowjobs/flows"
)

// flowListData is the flows page.
type flowListData struct {
	State, Name string
	States      []string
	Problem     string
	Items       []flowRow
	Next, First string
}

// flowRow is one flow of the list, with its failed step.
type flowRow struct {
	flows.View
	FailedName, FailedError string
}

func rows(vs []flows.View) []flowRow {
	out := make([]flowRow, len(vs))
	for i, v := range vs {
		out[i].View = v
		out[i].FailedName, out[i].FailedError = v.FailedStep()
	}
	return out
}

func (c *Console) flowList(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Flows == nil {
		c.storeError(w, r, "Flows", errUnavailable)
		return
	}
	q := r.URL.Query()
	d := flowListData{State: strings.TrimSpace(q.Get("state")), Name: truncate(strings.TrimSpace(q.Get("name")), 100),
		States: []string{flows.StateRunning, flows.StateFailed, flows.StateCompleted, flows.StateCancelled}}
	if !q.Has("state") {
		d.State = "" // running and failed: two lists below
	}
	status := http.StatusOK
	switch d.State {
	case "", flows.StateRunning, flows.StateFailed, flows.StateCompleted, flows.StateCancelled:
	default:
		d.Problem, status = "state: must be running, failed, completed or cancelled", http.StatusBadRequest
	}
	if d.Problem == "" {
		cursor := q.Get("cursor")
		if d.State == "" {
			// The flows that need an eye: failed first, then running.
			for _, st := range []string{flows.StateFailed, flows.StateRunning} {
				p, err := c.cfg.Flows.List(r.Context(), flows.Filter{State: st, Name: d.Name}, "", pageSize)
				if err != nil {
					c.storeError(w, r, "Flows", err)
					return
				}
				d.Items = append(d.Items, rows(p.Items)...)
			}
		} else {
			p, err := c.cfg.Flows.List(r.Context(), flows.Filter{State: d.State, Name: d.Name}, cursor, pageSize)
			if err != nil {
				c.storeError(w, r, "Flows", err)
				return
			}
			d.Items = rows(p.Items)
			v := url.Values{"state": {d.State}}
			if d.Name != "" {
				v.Set("name", d.Name)
			}
			if cursor != "" {
				d.First = Root + "/flows?" + v.Encode()
			}
			if p.Next != "" {
				v.Set("cursor", p.Next)
				d.Next = Root + "/flows?" + v.Encode()
			}
		}
	}
	c.render(w, r, status, "flows", "Flows", "flows", d)
}

// stepRow is one step of the flow page.
type stepRow struct {
	flows.StepView
	// Queue is the job's queue in asynq ("" when asynq no longer holds it).
	Queue string
	// DeadLetter is the state of the job's latest dead letter ("" for none).
	DeadLetter string
}

// flowData is the page of one flow.
type flowData struct {
	Flow  flows.View
	Steps []stepRow
}

func (c *Console) flow(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Flows == nil {
		c.storeError(w, r, "Flows", errUnavailable)
		return
	}
	id := r.PathValue("id")
	v, err := c.cfg.Flows.Status(r.Context(), id)
	if err != nil {
		c.storeError(w, r, "Flow "+id, err)
		return
	}
	d := flowData{Flow: v}
	for _, s := range dependencyOrder(v.Steps) {
		d.Steps = append(d.Steps, c.stepRow(r, s))
	}
	c.render(w, r, http.StatusOK, "flow", "Flow "+id, "flows", d)
}

// stepRow adds the step's queue and dead letter.
func (c *Console) stepRow(r *http.Request, s flows.StepView) stepRow {
	row := stepRow{StepView: s}
	if c.cfg.Jobs != nil && s.JobID != "" {
		if j, err := c.cfg.Jobs.Status(r.Context(), s.JobID); err == nil {
			row.Queue = j.Queue
		}
	}
	if c.cfg.DeadLetters != nil && s.JobID != "" {
		if e, err := c.cfg.DeadLetters.Get(r.Context(), s.JobID); err == nil {
			row.DeadLetter = e.State
			if row.Queue == "" {
				row.Queue = e.Queue
			}
		}
	}
	return row
}

// dependencyOrder lists steps so that each comes after the steps it runs
// after (ties in the flow's order), on-failure steps last.
func dependencyOrder(steps []flows.StepView) []flows.StepView {
	placed := map[string]bool{}
	var out []flows.StepView
	for _, onFailure := range []bool{false, true} {
		for progress := true; progress; {
			progress = false
			for _, s := range steps {
				if s.OnFailure != onFailure || placed[s.Name] {
					continue
				}
				ready := true
				for _, a := range s.After {
					if !placed[a] {
						ready = false
						break
					}
				}
				if ready {
					placed[s.Name], progress = true, true
					out = append(out, s)
				}
			}
		}
	}
	for _, s := range steps { // a cycle Build would have refused: keep it visible
		if !placed[s.Name] {
			out = append(out, s)
		}
	}
	return out
}
