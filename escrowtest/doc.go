// Package escrowtest is the one shared kit of test doubles and helpers: a
// stateful Stripe API with fault injection (Stripe), a partner endpoint that
// verifies every webhook with webhook.Verify (Receiver), a scripted partner
// endpoint for the partner-delivery tests (Partner: any status, Retry-After,
// hanging; arrival times and the most requests held at once), a recording set of
// every adapter the handlers need (Adapters), the real worker started over
// them (StartWorker), a fresh dead-letter ledger of either store (Ledger),
// a binary's run or a Run loop in the background for the length of a test
// (Start), polling helpers (Eventually, AwaitState) and the proof that
// asynq's lease recoverer has nothing left to rerun (NoLeases).
//
// The real peers (redis-server, PostgreSQL, mailpit, stripe-mock) are
// started by peertest; the sample payloads of the nine job types
// come from escrowtest/sample. A test file never keeps its own copy of any of
// these.
//
// Like River's rivertest it is public but not a stable API: it exists for
// this project's tests and changes with them.
package escrowtest
