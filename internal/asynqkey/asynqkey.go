// Package asynqkey names the Redis keys of asynq (v0.26, the version in
// go.mod) that escrowjobs reads or writes by hand: the wake-up hooks, the
// requeue of a dead letter, the worker's archive sweep and forward gate,
// the partner wake script and the test kit's lease proof. asynq does not
// export them; tasks TestAsynqKeyNamesTheCodeUses pins them against the
// asynq in go.mod, so an upgrade that renames one fails that test.
//
// Every key of a queue carries the queue in a hash tag ("asynq:{q}:…"), so
// on a Cluster a queue's keys share one slot.
package asynqkey

import "strings"

// AllQueues is the set of every queue's name.
const AllQueues = "asynq:queues"

// Prefix is what every key of queue q starts with.
func Prefix(q string) string { return "asynq:{" + q + "}:" }

// Pending is q's list of jobs ready to run.
func Pending(q string) string { return Prefix(q) + "pending" }

// Scheduled is q's sorted set of jobs due later, scored by due time.
func Scheduled(q string) string { return Prefix(q) + "scheduled" }

// Retry is q's sorted set of jobs waiting for their next attempt.
func Retry(q string) string { return Prefix(q) + "retry" }

// Archived is q's sorted set of archived (dead) jobs.
func Archived(q string) string { return Prefix(q) + "archived" }

// Paused is the key that marks q paused.
func Paused(q string) string { return Prefix(q) + "paused" }

// Active is q's list of jobs leased to a worker.
func Active(q string) string { return Prefix(q) + "active" }

// Lease is q's sorted set of active jobs by lease expiry.
func Lease(q string) string { return Prefix(q) + "lease" }

// Group is the sorted set of q's jobs aggregating in group g.
func Group(q, g string) string { return Prefix(q) + "g:" + g }

// Groups is the set of q's groups that hold aggregating jobs.
func Groups(q string) string { return Prefix(q) + "groups" }

// Task is the hash of job id in q (fields msg, state, …).
func Task(q, id string) string { return Prefix(q) + "t:" + id }

// QueueOf returns the queue of key when it is a queue's key named suffix
// ("pending" for Pending(q)).
func QueueOf(key, suffix string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "asynq:{")
	if !ok {
		return "", false
	}
	q, ok := strings.CutSuffix(rest, "}:"+suffix)
	if !ok || q == "" {
		return "", false
	}
	return q, true
}

// ParseTask returns the queue and job ID of a Task key.
func ParseTask(key string) (q, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, "asynq:{")
	if !ok {
		return "", "", false
	}
	q, id, ok = strings.Cut(rest, "}:t:")
	if !ok || q == "" || id == "" {
		return "", "", false
	}
	return q, id, true
}

// Script reads a go-redis EVAL or EVALSHA command's args (name, script or
// SHA, number of keys, keys…, arguments…) as asynq's scripts send them:
// keys are the nkeys keys, argv the arguments after them. ok is false for
// any other command, another number of keys, or fewer than minArgs
// arguments. It allocates nothing: the redis hooks call it on every command.
func Script(args []any, nkeys, minArgs int) (keys, argv []any, ok bool) {
	if len(args) < 3+nkeys+minArgs {
		return nil, nil, false
	}
	if name, _ := args[0].(string); name != "evalsha" && name != "eval" {
		return nil, nil, false
	}
	if n, _ := args[2].(int); n != nkeys {
		return nil, nil, false
	}
	return args[3 : 3+nkeys], args[3+nkeys:], true
}
