// Package handlers processes the nine escrow side-effect jobs.
//
// One generic adapter, [Typed], turns a func(ctx, P) error into an asynq
// handler: it decodes the payload, validates it again (a payload that fails
// is archived at once, with an error naming the field) and calls the
// function. The handler families (email, stripe, webhook, audit, notify)
// depend on the small interfaces in deps.go, so the same handlers run with
// production adapters, the -dev log adapters, or test fakes.
//
// [NewServeMux] wires all nine into an asynq.ServeMux, with a middleware
// that logs every outcome with task_type, task_id, queue and attempt (e-mail
// addresses masked) and archives jobs of unknown types at once.
package handlers
