package flows

import "unicode/utf8"

// Headers of an on-failure step's job: the step whose dead letter failed
// the flow and its error (addresses masked, at most maxFailureText bytes),
// so the on-failure job can say why (read them with FailureOf).
const (
	HeaderFailedStep = "escrowjobs-flow-failed-step"
	HeaderFailure    = "escrowjobs-flow-failure"
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

// withFailure is spec with the failure headers of step and reason.
func withFailure(spec taskSpec, step, reason string) taskSpec {
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
	spec.Headers = h
	return spec
}
