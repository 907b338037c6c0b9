// Package process holds the process fault suite (its tests only): the real
// cmd/server binary, the production worker process, killed with SIGKILL
// while it holds in-flight jobs, stopped with SIGTERM mid-run, three of
// them sharing one Redis under load, and its outbox relay killed inside a
// batch of flow start jobs (PostgreSQL from peertest.Postgres; TestMain
// stops it).
//
// The peers are real (redis-server, mailpit) or the stateful loopback
// doubles of escrowtest that count effects per job: a Stripe that
// honours Idempotency-Key and keeps PaymentIntents and refunds, and a
// webhook receiver that checks every signature with webhook.Verify. The
// slow peers apply the effect first and answer late, so a worker that dies
// in the pause has caused the effect but never heard of it — the case
// idempotency exists for.
//
// Each test logs jobs in, effects out, lost and doubled, takes the final
// count only once escrowtest.NoLeases proves asynq has no job left to rerun,
// and ends by scanning the output of every server it ran for secrets and
// raw e-mail addresses.
//
// Run it alone: go test -count=1 ./faults/process/
package process
