// Package tasks builds, enqueues and inspects escrow side-effect jobs.
//
// # The nine types
//
// Each job type is named by its payload (package payloads), the only place
// its task type string is written:
//
//	send_release_email             default   escrow-<tx>-release-<recipient hash>
//	send_refund_email              default   escrow-<tx>-refund-<recipient hash>
//	send_dispute_email             default   dispute-<disputeId>-<recipient hash>
//	send_payment_confirmed_email   default   payment-<paymentIntentId>-<recipient hash>
//	stripe_capture_payment         critical  capture-<paymentIntentId>
//	stripe_refund_payment          critical  refund-<paymentIntentId>-full, or -<amount>-<refundId> (partial)
//	webhook_escrow_status_changed  default   event-<eventId>
//	notify_dispute_resolved        default   dispute-<disputeId>-resolved
//	audit_log_created              low       audit-<eventId>
//
// The columns are the queue (weights critical 6, default 3, low 1) and the
// default dedupe key. The recipient hash is payloads.RecipientHash: no raw
// e-mail address is ever part of a job ID.
//
// # The registry
//
// [Types] is the one list of job types (tasks/registry.go, one line per
// type). Everything that must know every type reads it: [FromJSON] and
// [Lookup] (the HTTP API, jobctl, the scheduler's entries), the worker's
// mux (handlers.NewServeMux refuses to start when a registered type has no
// handler or a handler has no registered type), the e-mail templates
// ([Type] names its template) and the samples of the benchmarks and the
// load command ([Type] makes a typical payload). A test ranges over it, so
// a type that lacks a handler, a sample or a template fails a test rather
// than a customer.
//
// Adding a type: its payload struct in package payloads (TaskType and
// DedupeKey; Queue and Timeout only when they differ from
// payloads.DefaultQueue and payloads.DefaultTimeout), its line in the
// registry, its handler (a method and its route in its family's file in
// package handlers), its adapter, and for an e-mail its template.
//
// # Naming
//
// A job's type is its task type: the payload's TaskType, [Type.Name], the
// "type" of the HTTP API and jobctl, the task_type of every log line. A
// job's ID is "<type>:<dedupe key>" ([JobID]), with the default key above
// or the caller's ([DedupeKey]); adapters receive it as JobID and derive
// their idempotency keys from it.
//
// # Building
//
// One constructor per type (NewSendReleaseEmailTask … NewAuditLogCreatedTask)
// wraps the generic [New]: validate the payload (a *payloads.ValidationError
// names every bad field, and nothing is built), encode it as JSON, and apply
// the type's defaults: queue, timeout, retry.Max retries, one hour of
// retention and the job ID. Code that handles types by name uses
// [FromJSON], which also rejects unknown fields.
//
// # Dedupe
//
// asynq refuses a second job with the same ID while the first is pending,
// scheduled, retrying, archived, or completed within its one-hour retention:
// [Client.Enqueue] then returns the existing ID and an error that errors.Is
// [ErrDuplicate]. (asynq.Unique would release its lock on success, so a
// replay right after completion would run twice.)
//
// # Retries
//
// The policy lives in package retry: every job gets one attempt plus three
// retries (retry.Max), 2 s, 4 s and 8 s after each failure (retry.Delay),
// then it is archived and written to the durable dead-letter log. A peer's
// Retry-After longer than the schedule is honoured (retry.After). A failure
// that wraps asynq.SkipRetry is permanent: the job is archived at once. The
// worker (package worker) holds each retry until its exact due time, so
// retries are never early although asynq stores retry times in whole
// seconds.
//
// # Enqueueing
//
// [Client.Enqueue] gives up after [EnqueueTimeout] (2 s) when the caller's
// context has no earlier deadline, so a Redis outage returns an error and
// never stalls the caller's request.
//
// # Inspecting and repairing
//
// [Inspector] finds any job by ID ([Inspector.Status]) and counts queues
// ([Inspector.Stats]). Every call takes a context and returns when it ends,
// also when Redis does not answer. Listing dead letters and requeueing them
// with their full retry budget is the desk of package repair
// ([github.com/escrowjobs/escrowjobs/repair.Desk]), built over an Inspector
// and the dead-letter ledger.
package tasks
