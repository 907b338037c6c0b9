package main

import (
	"context"
	"errors"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
)

// Statuses the escrows table holds while a transition's money step runs.
// GET /escrows/{id} reports them as they are until the flow says more: see
// reportedStatus.
const (
	statusReleasing = "releasing"
	statusRefunding = "refunding"
	statusResolving = "resolving"
)

// moving describes a status in which money is moving: the flow that moves
// it, the status once its money step completed, and the status while that
// step failed for good (or was discarded).
type moving struct{ flow, done, failed string }

var movingStatuses = map[string]moving{
	statusReleasing: {flowRelease, payloads.StatusReleased, "release_failed"},
	statusRefunding: {flowRefund, payloads.StatusRefunded, "refund_failed"},
	statusResolving: {flowResolve, payloads.StatusResolved, "resolve_failed"},
}

// flowReader reads a flow (*flows.Store).
type flowReader interface {
	Status(ctx context.Context, id string) (flows.View, error)
}

// flowSummary is one flow of an escrow as GET shows it.
type flowSummary struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	State      string `json:"state"`
	FailedStep string `json:"failedStep,omitempty"`
	Error      string `json:"error,omitempty"`
}

// flowsOf reads escrow id's flows (those that exist), in the order they
// can happen.
func flowsOf(ctx context.Context, fr flowReader, id string) ([]flows.View, error) {
	var out []flows.View
	for _, name := range flowNames {
		v, err := fr.Status(ctx, flows.ID(name, id))
		if errors.Is(err, flows.ErrNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

func summaries(views []flows.View) []flowSummary {
	out := make([]flowSummary, 0, len(views))
	for _, v := range views {
		s := flowSummary{ID: v.ID, Name: v.Name, State: v.State}
		s.FailedStep, s.Error = v.FailedStep()
		out = append(out, s)
	}
	return out
}

// reportedStatus is where the money of an escrow whose table status is
// status is, given its flows: for releasing, refunding and resolving, the
// settled status (released, refunded, resolved) once the flow's money
// step completed, the failed one (release_failed, …) while it failed for
// good or was discarded, else status itself (the flow has not started yet,
// or its money step waits, runs or retries).
func reportedStatus(status string, views []flows.View) string {
	m, ok := movingStatuses[status]
	if !ok {
		return status
	}
	for _, v := range views {
		if v.Name != m.flow {
			continue
		}
		switch moneyStepState(v) {
		case flows.StepCompleted:
			return m.done
		case flows.StepFailed, flows.StepBlocked, flows.StepCancelled:
			return m.failed
		}
	}
	return status
}

// moneyStepState is the state of v's capture or refund step ("" without
// one); a step that had not completed when its flow was cancelled counts
// as cancelled.
func moneyStepState(v flows.View) string {
	for _, s := range v.Steps {
		if s.OnFailure || s.Type != (payloads.StripeCapturePayment{}).TaskType() && s.Type != (payloads.StripeRefundPayment{}).TaskType() {
			continue
		}
		if v.State == flows.StateCancelled && s.State != flows.StepCompleted {
			return flows.StepCancelled
		}
		return s.State
	}
	return ""
}
