// Package outbox adds jobs inside the caller's PostgreSQL transaction, so a
// side effect commits or rolls back with the change that causes it, and
// relays them to Redis afterwards.
//
// # Why
//
// "Commit, then enqueue" loses the side effect when Redis is unreachable at
// that moment: the escrow is released but the capture, the e-mail and the
// webhook never happen. With the outbox the jobs are rows in the same
// transaction as the state change; a rollback leaves no job and a commit
// leaves rows that a [Relay] moves to Redis once it can.
//
// # Adding jobs
//
//	tx, _ := pool.Begin(ctx)
//	defer tx.Rollback(ctx)
//	// … change the escrow …
//	capture, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{…})
//	if err != nil { return err } // a bad payload fails here, before the commit
//	if err := outbox.Add(ctx, tx, capture); err != nil { return err }
//	return tx.Commit(ctx)
//
// [Add] stores what rebuilds the task exactly: job ID, type, payload, queue,
// timeout, retry budget, retention, process time and headers. It also issues
// a NOTIFY, which PostgreSQL delivers on commit, so an idle relay wakes at
// once instead of at its next poll.
//
// # Relaying
//
// A [Relay] (cmd/server runs one when OUTBOX_DATABASE_URL is set) claims
// rows in batches with FOR UPDATE SKIP LOCKED, so any number of relays can
// share the table, enqueues each under its job ID through [tasks.Client],
// and deletes the rows in the same transaction. A job ID already in Redis
// ([tasks.ErrDuplicate]) counts as done: a relay that dies between the
// enqueue and the delete leaves rows that the next claim finds already
// enqueued, so nothing is doubled. When Redis is down the rows stay and the
// relay backs off (up to [DefaultMaxBackoff]); they flow once it is back.
//
// # Duplicates
//
// The table holds at most one row per job ID (a second Add of a job ID that
// is still waiting is a no-op). A second Add after the first was relayed
// behaves like a second [tasks.Client.Enqueue]: within the job's retention
// Redis refuses it and the relay drops the row; after that it is a new job.
//
// # Metrics
//
// [Relay.Stats] reports the backlog and the age of the oldest row;
// [Relay.Register] (or [Relay.Collectors]) exposes them, and the relay's
// counters, to Prometheus on the registry passed in.
package outbox
