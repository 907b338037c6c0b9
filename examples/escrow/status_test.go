package main

import (
	"testing"

	"github.com/escrowjobs/escrowjobs/flows"
)

func TestReportedStatusSaysWhereTheMoneyIs(t *testing.T) {
	const capture, refund = "stripe_capture_payment", "stripe_refund_payment"
	flow := func(name, state, moneyType, moneyState string, others ...flows.StepView) flows.View {
		steps := append([]flows.StepView{{Name: "money", Type: moneyType, State: moneyState}}, others...)
		steps = append(steps, flows.StepView{Name: "failure-audit", Type: "audit_log_created", OnFailure: true, State: flows.StepWaiting})
		return flows.View{ID: name + ":esc-1", Name: name, State: state, Steps: steps}
	}
	mailFailed := flows.StepView{Name: "seller-email", Type: "send_release_email", State: flows.StepFailed, After: []string{"money"}}
	for _, tc := range []struct {
		name, status string
		views        []flows.View
		want         string
	}{
		{"funded", "funded", []flows.View{flow("fund", flows.StateCompleted, "", "")}, "funded"},
		{"disputed", "disputed", nil, "disputed"},
		{"releasing, flow not started yet", "releasing", []flows.View{flow("fund", flows.StateCompleted, "", "")}, "releasing"},
		{"releasing, capture pending", "releasing", []flows.View{flow("release", flows.StateRunning, capture, flows.StepPending)}, "releasing"},
		{"releasing, capture retrying", "releasing", []flows.View{flow("release", flows.StateRunning, capture, flows.StepRetry)}, "releasing"},
		{"released, mails still to go", "releasing", []flows.View{flow("release", flows.StateRunning, capture, flows.StepCompleted)}, "released"},
		{"released, a mail failed after it", "releasing", []flows.View{flow("release", flows.StateFailed, capture, flows.StepCompleted, mailFailed)}, "released"},
		{"release failed", "releasing", []flows.View{flow("release", flows.StateFailed, capture, flows.StepFailed)}, "release_failed"},
		{"release discarded", "releasing", []flows.View{flow("release", flows.StateCancelled, capture, flows.StepCancelled)}, "release_failed"},
		{"release repaired, running again", "releasing", []flows.View{flow("release", flows.StateRunning, capture, flows.StepPending)}, "releasing"},
		{"refunded", "refunding", []flows.View{flow("refund", flows.StateCompleted, refund, flows.StepCompleted)}, "refunded"},
		{"refund failed", "refunding", []flows.View{flow("refund", flows.StateFailed, refund, flows.StepFailed)}, "refund_failed"},
		{"another flow's state does not count", "refunding", []flows.View{flow("release", flows.StateCompleted, capture, flows.StepCompleted)}, "refunding"},
		{"resolved", "resolving", []flows.View{flow("resolve", flows.StateCompleted, refund, flows.StepCompleted)}, "resolved"},
		{"resolve failed", "resolving", []flows.View{flow("resolve", flows.StateFailed, capture, flows.StepFailed)}, "resolve_failed"},
	} {
		if got := reportedStatus(tc.status, tc.views); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
