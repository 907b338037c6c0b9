// Package soak is the chaos soak of the whole system: the guarantees of
// the fault suites (faults/process, faults/redis), which prove one fault
// at a time, checked together under a random schedule of faults.
//
// TestSoak runs, on loopback and all real: examples/escrow (every
// transition a flow through the outbox) on PostgreSQL, three cmd/server
// processes (two relay the outbox), cmd/monitor, Redis master and replica
// under Sentinel with REDIS_WAIT_REPLICAS=1, mailpit, the stateful Stripe
// fake of escrowtest and three partners (healthy, flaky, one that goes
// down). Every Redis and PostgreSQL connection passes through a link of
// Shopify's toxiproxy, run in the test process as a library (Links).
//
// A workload creates escrows at a steady rate and moves each through a
// path drawn from the seed: release, refund, dispute and resolve
// (release_to_seller, refund_to_buyer, split), some on a PaymentIntent
// whose authorization expired, so that its capture fails for good. Plan
// draws the nemesis's schedule from the same seed (math/rand/v2, PCG):
// SIGKILL and SIGTERM of a worker (restarted after a pause), SIGKILL of
// the Redis master (Sentinel promotes the replica; the old master comes
// back as a replica), SIGSTOP of a Redis node, PostgreSQL restarts, the
// partner down, Stripe answering 500, latency and cut connections on the
// Redis and PostgreSQL links.
//
// After the faults stop and the system drains (bounded), the test checks,
// escrow by escrow, from the database rows (which transitions committed)
// and the peers' records: one capture or cancel per money step at the
// Stripe fake (and nothing else), one e-mail per kind and recipient
// (Message-ID) in mailpit, a successful delivery per webhook-id at the
// escrow's partner, one audit record per event, a dead letter exactly for
// each capture that cannot succeed, every flow in its final state and none
// running, and no Redis key pattern without an expiry that grows with the
// run (KeyPattern, Growth). A failure prints the seed, the fault timeline
// and the escrows that broke an invariant; the last line is the summary.
//
// Short run (inside go test ./...): go test -count=1 ./faults/soak/
// Replay a seed: go test -count=1 ./faults/soak/ -run TestSoak -soak.seed 42
// Long run: go test -count=1 -timeout 60m ./faults/soak -run TestSoak -soak.duration 30m -v
package soak
