// Package eventorder keeps, in Redis, the order of the partner events of
// each escrow, so a partner that asks for it ("ordered" in the registry)
// gets one escrow's events strictly in sequence.
//
// Every webhook event is registered when it is enqueued (tasks, in the
// script that takes its sequence) in the sorted set of its escrow and
// partner, Key(tx, partner): member the job ID, score the sequence. An
// event is open while its score is positive; once it is delivered,
// discarded or a final dead letter it is released: its score becomes the
// negated sequence, so a duplicate enqueue (ZADD NX) writes nothing and
// cannot bring it back. The head of an escrow is its open event with the
// lowest sequence. Every key of an escrow carries the escrow's ID as hash
// tag, so the scripts run on Redis Cluster; every key expires TTL after
// the escrow's latest event.
//
// The package is the machinery shared by tasks (registration), partner
// (the delivery gate, release on delivery and dead letter) and repair
// (release on discard); it imports nothing of the module but asynqkey.
package eventorder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
)

// TTL is how long an escrow's order keys outlive its latest event, like
// its sequence counter.
const TTL = 90 * 24 * time.Hour

// CounterKey is the sequence counter of an escrow's partner events.
func CounterKey(tx string) string { return "escrowjobs:seq:{" + tx + "}" }

// Key is the sorted set of the events of escrow tx to partner.
func Key(tx, partner string) string { return CounterKey(tx) + ":" + partner }

// WaitingKey is the set of events of escrow tx to partner that wait for
// an earlier one (each is woken when the event ahead of it is released).
func WaitingKey(tx, partner string) string { return Key(tx, partner) + ":waiting" }

// suspectKey maps a head whose job was not found to when that was first
// seen (unix ms): an orphan is dropped only after a grace.
func suspectKey(tx, partner string) string { return Key(tx, partner) + ":suspect" }

// RegisterLua defines, for a script that includes it, register(counter,
// set, ttl, id, given): it takes the next sequence of an escrow (counter,
// when given is empty) or uses the given one, and registers event id in
// its partner's set unless it is there already (ZADD NX: a duplicate
// writes nothing); an empty id registers nothing. Every key it writes
// expires ttl (ms) after. It returns the sequence. The flows' advancement
// script includes it for the partner events it enqueues itself.
//
// It also defines with_sequence(body, sep, n): a payload split by
// SplitForSequence with "sequence": n added, as WithSequence does.
const RegisterLua = `
local function with_sequence(body, sep, n) return body .. sep .. '"sequence":' .. n .. '}' end
local function register(counter, set, ttl, id, given)
  local n
  if given == '' then
    n = redis.call('INCR', counter)
    redis.call('PEXPIRE', counter, ttl)
  else
    n = tonumber(given)
  end
  if id ~= '' then
    redis.call('ZADD', set, 'NX', n, id)
    redis.call('PEXPIRE', set, ttl)
  end
  return n
end
`

// registerScript is register for Register. KEYS: counter, set. ARGV: ttl
// ms, job ID ("" registers nothing), given sequence ("" to take the next).
var registerScript = redis.NewScript(RegisterLua + `
return register(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
`)

// Member is what an event of partner registers in its escrow's order set:
// its job ID, or "" (nothing registered) for an event without a partner.
func Member(partner, jobID string) string {
	if partner == "" {
		return ""
	}
	return jobID
}

// SplitForSequence splits a JSON object payload for "sequence" to be added
// to it: body is the payload without its closing brace (and trailing
// space), sep "," when the object has members. WithSequence (and the Lua
// with_sequence of RegisterLua) joins them back with the number.
func SplitForSequence(payload []byte) (body []byte, sep string, err error) {
	b := bytes.TrimRight(payload, " \t\r\n")
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, "", errors.New("payload is not a JSON object")
	}
	if len(bytes.TrimSpace(b[1:len(b)-1])) > 0 {
		sep = ","
	}
	return b[:len(b)-1], sep, nil
}

// WithSequence is body and sep (SplitForSequence) with "sequence": n added.
func WithSequence(body []byte, sep string, n int64) []byte {
	out := make([]byte, 0, len(body)+len(sep)+32)
	out = append(append(append(out, body...), sep...), `"sequence":`...)
	return append(strconv.AppendInt(out, n, 10), '}')
}

// Register gives the event jobID of escrow tx to partner its sequence
// (the next of the escrow's counter when seq is 0, else seq) and
// registers it, in one round trip. An empty partner or jobID only takes
// the sequence.
func Register(ctx context.Context, rc redis.Scripter, tx, partner, jobID string, seq int64) (int64, error) {
	given := ""
	if seq > 0 {
		given = fmt.Sprint(seq)
	}
	return registerScript.Run(ctx, rc, []string{CounterKey(tx), Key(tx, partner)}, TTL.Milliseconds(), Member(partner, jobID), given).Int64()
}

// checkScript decides whether event ARGV[1] may go: yes when it is not
// registered, released, or the head; otherwise it is recorded as waiting
// and the head and the count of open events ahead of it are returned.
// KEYS: set, waiting. ARGV: job ID, ttl ms.
// Returns {'go'} | {'wait', head, ahead}.
var checkScript = redis.NewScript(`
local my = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not my) or tonumber(my) <= 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return {'go'}
end
local head = redis.call('ZRANGEBYSCORE', KEYS[1], '(0', '(' .. my, 'LIMIT', 0, 1)
if #head == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return {'go'}
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {'wait', head[1], redis.call('ZCOUNT', KEYS[1], '(0', '(' .. my)}
`)

// Verdict is Check's answer.
type Verdict struct {
	// Go is true when the event may be delivered now.
	Go bool
	// Head is the open event ahead of it (when !Go).
	Head string
	// Ahead counts the open events ahead of it (when !Go).
	Ahead int
}

// Check says whether the event jobID of escrow tx to partner may be
// delivered now; when not, it is recorded as waiting for Head, so the
// release of the event ahead of it wakes it.
func Check(ctx context.Context, rc redis.Scripter, tx, partner, jobID string) (Verdict, error) {
	res, err := checkScript.Run(ctx, rc, []string{Key(tx, partner), WaitingKey(tx, partner)}, jobID, TTL.Milliseconds()).Slice()
	if err != nil {
		return Verdict{}, err
	}
	if len(res) == 3 && res[0] == "wait" {
		head, _ := res[1].(string)
		n, _ := res[2].(int64)
		return Verdict{Head: head, Ahead: int(n)}, nil
	}
	return Verdict{Go: true}, nil
}

// releaseScript releases event ARGV[1] (if it is open and, when ARGV[2]
// is set, still the head: an orphan's drop must not release an event
// that moved on) and returns the new head when it waits (it is taken out
// of the waiting set: its wake-up is the caller's).
// KEYS: set, waiting, suspect. ARGV: job ID, only-if-head ("1" or empty).
// Returns {released (0|1), the next head if it waits, else empty}.
var releaseScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local released = 0
if s and tonumber(s) > 0 then
  if ARGV[2] == '1' then
    local head = redis.call('ZRANGEBYSCORE', KEYS[1], '(0', '+inf', 'LIMIT', 0, 1)
    if head[1] ~= ARGV[1] then return {0, ''} end
  end
  redis.call('ZADD', KEYS[1], 'XX', -tonumber(s), ARGV[1])
  released = 1
end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local nxt = redis.call('ZRANGEBYSCORE', KEYS[1], '(0', '+inf', 'LIMIT', 0, 1)
if nxt[1] and redis.call('SREM', KEYS[2], nxt[1]) == 1 then return {released, nxt[1]} end
return {released, ''}
`)

// Release marks the event jobID of escrow tx to partner done (delivered,
// discarded or a final dead letter): the events behind it no longer wait
// for it. It returns the event now at the head when that one waits, for
// the caller to wake (Wake), and whether this call released it.
func Release(ctx context.Context, rc redis.Scripter, tx, partner, jobID string) (next string, released bool, err error) {
	return release(ctx, rc, tx, partner, jobID, false)
}

func release(ctx context.Context, rc redis.Scripter, tx, partner, jobID string, onlyHead bool) (string, bool, error) {
	flag := ""
	if onlyHead {
		flag = "1"
	}
	res, err := releaseScript.Run(ctx, rc, []string{Key(tx, partner), WaitingKey(tx, partner), suspectKey(tx, partner)}, jobID, flag).Slice()
	if err != nil {
		return "", false, err
	}
	n, _ := res[0].(int64)
	next, _ := res[1].(string)
	return next, n == 1, nil
}

// DropHead releases head, if it is still the head of escrow tx to
// partner: it was found to be an orphan (no job runs it and none ever
// will).
func DropHead(ctx context.Context, rc redis.Scripter, tx, partner, head string) (next string, dropped bool, err error) {
	return release(ctx, rc, tx, partner, head, true)
}

// suspectScript records when head was first found without a job and
// returns the ms since then. KEYS: suspect. ARGV: head, ttl ms.
var suspectScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSETNX', KEYS[1], ARGV[1], now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return now - tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
`)

// Suspect records that head of escrow tx to partner was found without a
// job, and returns how long ago that was first seen.
func Suspect(ctx context.Context, rc redis.Scripter, tx, partner, head string) (time.Duration, error) {
	ms, err := suspectScript.Run(ctx, rc, []string{suspectKey(tx, partner)}, head, TTL.Milliseconds()).Int64()
	return time.Duration(ms) * time.Millisecond, err
}

// Behind counts the open events of escrow tx to partner after jobID (all
// of them wait for it when the partner is ordered); 0 when jobID is not
// open.
func Behind(ctx context.Context, rc redis.Cmdable, tx, partner, jobID string) (int, error) {
	s, err := rc.ZScore(ctx, Key(tx, partner), jobID).Result()
	if errors.Is(err, redis.Nil) || (err == nil && s <= 0) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := rc.ZCount(ctx, Key(tx, partner), fmt.Sprintf("(%d", int64(s)), "+inf").Result()
	return int(n), err
}

// wakeScript moves a job that waits in asynq's retry set to pending. It
// is asynq's RunTask restricted to the retry state: RunTask would also
// move a job that completed meanwhile back to pending and run it twice.
// KEYS: task, retry, pending. ARGV: job ID.
//
// It returns 1 when moved, 2 for a job that is running (it may be about
// to enter the retry set), 0 when it is pending or scheduled, -1 for a
// job that no longer waits: gone, completed or archived.
var wakeScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'completed' or st == 'archived' then return -1 end
if st == 'active' then return 2 end
if st ~= 'retry' then return 0 end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'pending')
return 1
`)

// Wake moves job id of queue q from asynq's retry set to pending (see
// wakeScript for the answer). The caller announces it on the queue's
// wake-up channel.
func Wake(ctx context.Context, rc redis.Scripter, q, id string) (int, error) {
	return wakeScript.Run(ctx, rc, []string{asynqkey.Task(q, id), asynqkey.Retry(q), asynqkey.Pending(q)}, id).Int()
}
