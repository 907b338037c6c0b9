package flows

import (
	"strings"
	"unicode/utf8"
)

// Headers of an on-failure step's job: the step whose dead letter failed
// the flow and its error (addresses masked, at most maxFailureText bytes),
// so the on-failure job can say why (read them with FailureOf).
const (
	HeaderFailedStep = "escrowjobs-flow-failed-step"
	HeaderFailure    = "escrowjobs-flow-failure"
	// HeaderCompletedSteps lists the flow's regular steps that had
	// completed when it failed, comma-separated (read them with
	// CompletedStepsOf): an on-failure step can tell whether the money step
	// ran before a later step failed. Absent when the flow could not be
	// read then.
	HeaderCompletedSteps = "escrowjobs-flow-completed-steps"
)

// maxFailureText bounds HeaderFailure.
const maxFailureText = 1024

// FailureOf returns the failed step and its error that an on-failure
// step's job carries; ok is false for any other job.
func FailureOf(headers map[string]string) (step, reason string, ok bool) {
	step = headers[HeaderFailedStep]
	if step == "" {
		return "", "", false
	}
	return step, headers[HeaderFailure], true
}

// CompletedStepsOf returns the regular steps that had completed when the
// flow failed, as an on-failure step's job carries them (in the flow's
// order; empty, not nil, for none); ok is false when the job does not
// carry the list (another job, or the flow could not be read).
func CompletedStepsOf(headers map[string]string) (steps []string, ok bool) {
	v, ok := headers[HeaderCompletedSteps]
	if !ok {
		return nil, false
	}
	if v == "" {
		return []string{}, true
	}
	return strings.Split(v, ","), true
}

// completedSteps is the regular steps of v that completed, in its order.
func completedSteps(v View) []string {
	out := []string{}
	for _, s := range v.Steps {
		if !s.OnFailure && s.State == StepCompleted {
			out = append(out, s.Name)
		}
	}
	return out
}

// withFailure is spec with the failure headers of step and reason, and of
// the completed steps when known (nil: not known).
func withFailure(spec taskSpec, step, reason string, completed []string) taskSpec {
	if len(reason) > maxFailureText {
		cut := maxFailureText
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut] + "…"
	}
	h := make(map[string]string, len(spec.Headers)+2)
	for k, v := range spec.Headers {
		h[k] = v
	}
	h[HeaderFailedStep], h[HeaderFailure] = step, reason
	if completed != nil {
		h[HeaderCompletedSteps] = strings.Join(completed, ",") // step names have no commas (build.go)
	}
	spec.Headers = h
	return spec
}
