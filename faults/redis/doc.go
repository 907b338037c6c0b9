// Package redis holds the Redis fault suite (its tests only): a Redis
// killed with SIGKILL and restarted, a job finishing while Redis is down,
// Redis down or hung at enqueue, Redis Cluster, and a Sentinel failover
// during a run.
//
// Each test runs the real worker and handlers over escrowtest.Adapters,
// counts the jobs that went in (acknowledged enqueues) and the effects
// that came out (successful adapter calls per job ID), and logs both:
// nothing acknowledged may be lost, nothing may be doubled. A "nothing
// doubled" count is taken only once escrowtest.NoLeases proves that asynq's
// lease recoverer has no job left to run again.
//
// Run it alone: go test -count=1 ./faults/redis/
package redis
