// Package handlers processes the nine escrow side-effect jobs.
//
// One generic adapter, [Typed], turns a func(ctx, P) error into an asynq
// handler: it decodes the payload, validates it again (a payload that fails
// is archived at once, with an error naming the field) and calls the
// function. The handler families (email, stripe, webhook, audit, notify)
// depend on the small interfaces in deps.go, so the same handlers run with
// production adapters, the -dev log adapters, or test fakes.
//
// Each family file (email.go, payment.go, webhook.go, notify.go, audit.go)
// holds its handlers and their routes. [NewServeMux] wires them into an
// asynq.ServeMux for every type of the registry (tasks.Types) and refuses
// to start when a registered type has no handler, with a middleware
// that logs every outcome with task_type, task_id, queue and attempt (e-mail
// addresses masked) and archives jobs of unknown types at once.
package handlers
