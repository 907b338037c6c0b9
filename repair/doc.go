// Package repair is the dead-letter desk: it lists the dead letters of the
// durable ledger (deadletter.Ledger, the source of truth; asynq's archive
// is a cache of it), requeues them with their full retry budget under the
// same job ID, one by one or all that match a filter (with a dry run
// first), discards them with a reason, and purges resolved ones.
//
// [NewDesk] builds a [Desk] over a tasks.Inspector (Redis) and the ledger.
// A requeue moves the job back to pending, or rebuilds it from the ledger's
// exact payload when asynq has dropped it, in one Redis transaction, and
// only then marks the record requeued: the job is never in neither place,
// and a requeue retried after any failure never runs it twice.
package repair
