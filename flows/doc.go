// Package flows runs escrow transitions as workflows on the job
// framework: named steps, each one job built by the typed constructors,
// that run after other steps (fan-out and fan-in), and on-failure steps
// that run when the flow fails.
//
// # Defining
//
// A flow has a name and a key (the escrow ID); its ID is "<name>:<key>"
// (ID). [New] starts a definition, [Builder.Step] adds a step and its job
// ([After] for its dependencies, [With] for the job's options), and
// [Builder.OnFailure] a step that runs only when the flow fails:
//
//	f, err := flows.New("release", e.ID).
//		Step("capture", capture).
//		Step("seller-email", mail, flows.After("capture")).
//		Step("partner-webhook", hook, flows.After("capture")).
//		Step("audit", audit).
//		OnFailure("failure-audit", failAudit).
//		Build()
//
// [Builder.Build] refuses a cycle, an unknown or duplicate step name, a
// step after an on-failure step and an invalid job with a *[BuildError]
// naming the step and the field (an invalid payload's
// *payloads.ValidationError is wrapped). Each step's job keeps its own job
// ID (the type's dedupe key), so idempotency keys derived from it are the
// same as for a single job; its headers name the flow and the step
// ([HeaderFlow], [HeaderStep], read with [Of]).
//
// # Starting
//
// [Start] stores the flow in Redis and enqueues the steps that wait for
// none; [Add] does the same inside the caller's PostgreSQL transaction
// through package outbox: one outbox row, a start job ([StartType]) that
// the worker's [Store.Middleware] runs, so the flow exists if and only if
// the transaction commits. Starting a flow ID that exists, also one that
// ended within the retention, returns the existing ID and [ErrDuplicate].
//
// A flow's state is one Redis hash, escrowjobs:flow:{<flow ID>}, whose hash
// tag is the flow ID: every script touches one key, so it is atomic and
// works on Redis Cluster. It expires the retention ([DefaultRetention],
// the dead-letter retention of 90 days) after its last change. Indexes of
// all, running and failed flows (sorted sets by creation time) serve
// [Store.List] and the metrics; they are written after the flow's script
// and may lag it after a crash, so List reads each flow's own state and
// corrects them (on one Redis the advancement script writes them with the
// flow's state).
//
// # Advancement
//
// [Store.Middleware] goes on the worker's handler, inside its retry gate.
// When a step's handler succeeds, before success goes back to asynq, one
// script marks the step completed and returns the steps whose
// dependencies have all completed; they are enqueued then. On one Redis
// (not a Cluster) the script enqueues them itself, from the job as asynq
// stores it that Start kept in the hash (q:<step>), with the history line,
// partner-event sequence and wake-up tasks.Client writes, and updates the
// indexes and counters of a flow that ends: one round trip a step. A crash
// anywhere in between makes asynq run the step again (its side effects are
// idempotent), which repeats the advancement: a dependent still pending is
// returned again and asynq's job-ID dedupe refuses it if it was enqueued,
// a dependent that completed is not returned. Two parents of a fan-in
// finishing at once in two processes: the script is atomic, so exactly one
// sees both completed. With [WaitReplicas] (REDIS_WAIT_REPLICAS) every
// script is acknowledged by that many replicas before the job succeeds.
//
// # Failure and repair
//
// A step fails when its job is dead-lettered: the worker calls
// [Store.Failed] (worker.Config.Flows). Its dependents that have not
// completed are blocked, the flow is failed and its on-failure steps are
// enqueued, once per flow. Dead-letter records name the flow and the step
// (deadletter.Entry.Flow, Step). Requeueing the dead letter
// ([Store.Requeued]) makes the flow running again, and when the step then
// succeeds its dependents run; discarding it ([Store.Discarded]) cancels
// the flow and its blocked steps. A flow is never completed while one of
// its regular steps is not.
//
// # Inspecting
//
// [Store.Status] returns a [View] of one flow with its steps (asynq's
// state, attempts and last error of a step's job where asynq still holds
// it); [Store.List] pages through flows by state and name;
// [Store.Collector] exports the counters of flows started, completed,
// failed and cancelled per name and the age of the oldest running flow.
package flows
