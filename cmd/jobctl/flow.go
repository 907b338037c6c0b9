package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// flowList is the --json shape of flow list: the API's GET /api/v1/flows
// answer ({"items": [...], "next": cursor|null}).
type flowList struct {
	Items []flows.View `json:"items"`
	Next  *string      `json:"next"`
}

// flow runs flow show and flow list: flows read from Redis (package flows'
// store), as GET /api/v1/flows/{id} and GET /api/v1/flows show them.
func (c *cli) flow(args []string) error {
	return c.subcommand("flow", args, []command{{"show", c.flowShow}, {"list", c.flowList}})
}

// flowStore reads flows on the Inspector's Redis, with asynq's view of
// each step's job.
func flowStore(in *tasks.Inspector) *flows.Store { return flows.NewStore(in.Redis(), in) }

func (c *cli) flowShow(args []string) error {
	pos, err := c.parse(c.flags("flow show"), args, 1, "the flow ID (<name>:<escrow ID>, e.g. release:esc-123)")
	if err != nil {
		return err
	}
	id := pos[0]
	return inspect(c, func(ctx context.Context, in *tasks.Inspector) (flows.View, error) {
		v, err := flowStore(in).Status(ctx, id)
		if errors.Is(err, flows.ErrNotFound) {
			return v, fmt.Errorf("flow %s not found", id)
		}
		if err != nil {
			return v, fmt.Errorf("flow show %s: %w", id, err)
		}
		return v, nil
	}, writeFlow)
}

func (c *cli) flowList(args []string) error {
	fs := c.flags("flow list")
	state := fs.String("state", "", "")
	name := fs.String("name", "", "")
	limit := fs.Int("limit", 50, "")
	cursor := fs.String("cursor", "", "")
	if _, err := c.parse(fs, args, 0, ""); err != nil {
		return err
	}
	switch *state {
	case "", flows.StateRunning, flows.StateCompleted, flows.StateFailed, flows.StateCancelled:
	default:
		return usagef("flow list: --state must be running, completed, failed or cancelled, got %q", *state)
	}
	if *limit < 1 || *limit > flows.MaxListLimit {
		return usagef("flow list: --limit must be 1-%d, got %d", flows.MaxListLimit, *limit)
	}
	return inspect(c, func(ctx context.Context, in *tasks.Inspector) (flowList, error) {
		page, err := flowStore(in).List(ctx, flows.Filter{State: *state, Name: *name}, *cursor, *limit)
		if errors.Is(err, flows.ErrBadCursor) {
			return flowList{}, usagef("flow list: --cursor is not a cursor jobctl or the API handed out")
		}
		if err != nil {
			return flowList{}, fmt.Errorf("flow list: %w", err)
		}
		out := flowList{Items: page.Items}
		if out.Items == nil {
			out.Items = []flows.View{}
		}
		if page.Next != "" {
			out.Next = &page.Next
		}
		return out, nil
	}, writeFlows)
}

// writeFlow prints a flow's summary as "key: value" lines, then its steps
// in dependency order (on-failure steps last): state, attempts, what each
// waits for, its job and last error.
func writeFlow(w io.Writer, v flows.View) error {
	err := writeFields(w, func(line func(k, v string)) {
		line("flow", v.ID)
		line("state", v.State)
		if step, _ := v.FailedStep(); step != "" {
			line("failed step", step)
		}
		line("steps", stepCounts(v))
		line("created at", stamp(&v.CreatedAt))
		line("updated at", stamp(&v.UpdatedAt))
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	return writeSteps(w, "", v.Steps)
}

// writeSteps prints the steps table, each line after indent.
func writeSteps(w io.Writer, indent string, steps []flows.StepView) error {
	tw := table(w)
	fmt.Fprintln(tw, indent+"STEP\tSTATE\tATTEMPTS\tAFTER\tJOB ID\tLAST ERROR")
	for _, s := range dependencyOrder(steps) {
		after := strings.Join(s.After, ",")
		switch {
		case s.OnFailure:
			after = "(on failure)"
		case after == "":
			after = "-"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\n", indent, s.Name, s.State, strconv.Itoa(s.Attempts), after, s.JobID,
			truncate(cell(s.LastError), lastErrorWidth))
	}
	return tw.Flush()
}

// dependencyOrder orders steps so that each comes after the steps it
// waits for: in the definition's order, a step's dependencies pulled in
// just before it; on-failure steps last.
func dependencyOrder(steps []flows.StepView) []flows.StepView {
	byName := make(map[string]flows.StepView, len(steps))
	for _, s := range steps {
		byName[s.Name] = s
	}
	out := make([]flows.StepView, 0, len(steps))
	seen := map[string]bool{}
	var visit func(s flows.StepView)
	visit = func(s flows.StepView) {
		if seen[s.Name] {
			return // placed, or on the path (a cycle Build refuses)
		}
		seen[s.Name] = true
		for _, a := range s.After {
			if d, ok := byName[a]; ok {
				visit(d)
			}
		}
		out = append(out, s)
	}
	for _, s := range steps {
		if !s.OnFailure {
			visit(s)
		}
	}
	for _, s := range steps {
		if s.OnFailure {
			out = append(out, s)
		}
	}
	return out
}

// stepCounts says how far a flow got: "3 of 4 completed", of its regular
// steps (on-failure steps are in the steps table).
func stepCounts(v flows.View) string {
	done, total := 0, 0
	for _, s := range v.Steps {
		if s.OnFailure {
			continue
		}
		total++
		if s.State == flows.StepCompleted {
			done++
		}
	}
	return fmt.Sprintf("%d of %d completed", done, total)
}

// writeFlows prints one line per flow: created, ID, state, progress and
// the failed step with its error.
func writeFlows(w io.Writer, l flowList) error {
	if len(l.Items) == 0 {
		_, err := fmt.Fprintln(w, "no flows")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "CREATED\tID\tSTATE\tSTEPS\tFAILED STEP\tERROR")
	for _, v := range l.Items {
		step, lastErr := v.FailedStep()
		if step == "" {
			step = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", stamp(&v.CreatedAt), v.ID, v.State, stepCounts(v), step, truncate(cell(lastErr), lastErrorWidth))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.Next != nil {
		_, err := fmt.Fprintf(w, "more: --cursor %s\n", *l.Next)
		return err
	}
	return nil
}
