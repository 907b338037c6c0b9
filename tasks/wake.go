package tasks

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/internal/asynqmsg"
	"github.com/escrowjobs/escrowjobs/internal/eventorder"
	"github.com/redis/go-redis/v9"
)

// WakeChannel is the pub/sub channel on which Client announces a job added
// to queue, so idle workers fetch it at once instead of at their next poll
// (SPEC §12). The queue's name is its hash tag, as in asynq's own keys, so
// on a Redis Cluster the channel (sharded pub/sub) lives on the node that
// holds the queue.
//
// The message is "p" for a job that is pending now, or "s" followed by the
// Unix second at which a scheduled job becomes due.
func WakeChannel(queue string) string { return "escrowjobs:wake:{" + queue + "}" }

// wakePublisher is a go-redis hook on the Client's connection. When asynq
// runs its enqueue or schedule script, the wake-up (a PUBLISH of the job's
// queue, SPUBLISH on a Cluster) and the escrow's history line of a job
// Client.Enqueue stores (indexEntry) go in the same round trip: the
// wake-up costs no extra round trip, and Redis runs it after the job is
// stored, so a worker that hears it finds the job. A failed publish is
// ignored: workers still poll, so a lost wake-up costs at most one poll
// interval.
//
// On one Redis (not a Cluster) the hook sends, in place of asynq's script,
// enqueueScript: the same writes (recognised by the script's SHA-1, which
// TestEnqueueScriptStoresWhatAsynqStores pins against the asynq in go.mod)
// plus the history line and the wake-up, one command. On a Cluster the
// escrow's key is in another slot than the queue's, so the hook sends a
// pipeline: the history line's script ahead of asynq's, then the wake-up.
type wakePublisher struct {
	rc      redis.UniversalClient
	sharded bool
}

func newWakePublisher(rc redis.UniversalClient) *wakePublisher {
	_, cluster := rc.(*redis.ClusterClient)
	return &wakePublisher{rc: rc, sharded: cluster}
}

func (p *wakePublisher) DialHook(next redis.DialHook) redis.DialHook { return next }

func (p *wakePublisher) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (p *wakePublisher) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		queue, msg, ok := enqueuedQueue(args)
		if !ok {
			return next(ctx, cmd)
		}
		ix, _ := ctx.Value(indexEntryKey{}).(*indexEntry)
		seq, _ := ctx.Value(seqEntryKey{}).(*seqEntry)
		if c, ok := cmd.(*redis.Cmd); ok && !p.sharded {
			if kind := asynqScriptKind(args); kind != "" {
				return enqueueInOne(ctx, next, c, kind, queue, msg, ix, seq)
			}
		}
		if seq != nil {
			// An asynq script not recognised: the sequence in a round trip
			// of its own, written into asynq's message here.
			if err := seq.takeApart(ctx, p.rc, args); err != nil {
				cmd.SetErr(err)
				return err
			}
		}
		pipe := p.rc.Pipeline()
		if ix != nil && ix.sent == nil && !ix.done {
			ix.add(ctx, pipe) // Client.Enqueue's history line, ahead of the job (history.go)
		}
		_ = pipe.Process(ctx, cmd)
		if p.sharded {
			pipe.SPublish(ctx, WakeChannel(queue), msg)
		} else {
			pipe.Publish(ctx, WakeChannel(queue), msg)
		}
		_, _ = pipe.Exec(ctx)
		return cmd.Err()
	}
}

// The SHA-1s of asynq's enqueue and schedule scripts (v0.26,
// internal/rdb enqueueCmd and scheduleCmd), which enqueueScript stands in
// for. Another asynq's scripts are not recognised and go to Redis as they
// are.
const (
	asynqEnqueueSHA  = "98d28b42650870a743450ffda9791e9e19c6991b"
	asynqScheduleSHA = "8ce6b38a99b73194585c251eb3c2a89559f37a87"
)

// asynqScriptKind is "p" for asynq's enqueue script, "s" for its schedule
// script, "" for anything else.
func asynqScriptKind(args []any) string {
	var sha string
	switch name, _ := args[0].(string); name {
	case "evalsha":
		sha, _ = args[1].(string)
	case "eval":
		src, _ := args[1].(string)
		sum := sha1.Sum([]byte(src))
		sha = hex.EncodeToString(sum[:])
	}
	switch sha {
	case asynqEnqueueSHA:
		return "p"
	case asynqScheduleSHA:
		return "s"
	}
	return ""
}

// enqueueScript does what asynq's enqueue or schedule script does, and in
// the same script announces the job, writes its escrow's history line and,
// for a partner event, takes its escrow's sequence and registers it in its
// partner's order set (internal/eventorder).
//
// KEYS: the task hash, the pending list (or scheduled set), then the
// escrow's index when ARGV[7] is set, then the sequence counter and order
// set when ARGV[10] is set. ARGV: asynq's three arguments (enqueue:
// message, ID, now in ns; schedule: message, due Unix second, ID), "p" or
// "s" (which of the two), the wake-up channel and message; the index's job
// ID ("" for no index), line and expiry in ms; the sequence's mode ("" none,
// "g" the payload has its own, "n" take the next), the payload without its
// closing brace and the separator to put before "sequence" (mode "n": then
// ARGV[1] is asynq's message without its payload, which the script adds
// with the sequence, under the payload's tag ARGV[13]), the given sequence
// ("" in mode "n"), the keys' expiry in ms and the member to register
// (eventorder.Member; "" registers nothing).
//
// Returns {stored, index}: stored 1, or 0 for a job ID that exists
// (asynq's answer; nothing is written, no sequence taken); index 1 when the
// line was written (a stored job) or is there (a duplicate), 0 when a
// duplicate has none, 2 when the index could not be read or written (not a
// string). A failed publish (a user without the channel) is ignored.
const enqueueScriptSource = indexLua + eventorder.RegisterLua + asynqmsg.Lua + `
local ixk, sk = nil, 3
if ARGV[7] ~= '' then ixk, sk = KEYS[3], 4 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if not ixk then return {0, 0} end
  local s = redis.pcall('GET', ixk)
  if type(s) == 'table' then return {0, 2} end
  if s and string.find('\n' .. s, '\n' .. ARGV[7] .. ' ', 1, true) then return {0, 1} end
  return {0, 0}
end
local msg = ARGV[1]
if ARGV[10] ~= '' then
  local n = register(KEYS[sk], KEYS[sk + 1], ARGV[15], ARGV[16], ARGV[14])
  if ARGV[10] == 'n' then
    msg = msg .. field(ARGV[13], with_sequence(ARGV[11], ARGV[12], n))
  end
end
if ARGV[4] == 'p' then
  redis.call('HSET', KEYS[1], 'msg', msg, 'state', 'pending', 'pending_since', ARGV[3])
  redis.call('LPUSH', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[1], 'msg', msg, 'state', 'scheduled')
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
end
redis.pcall('PUBLISH', ARGV[5], ARGV[6])
if not ixk then return {1, 1} end
if pcall(index, ixk, ARGV[7], ARGV[8], tonumber(ARGV[9]), 'set') then return {1, 1} end
return {1, 2}
`

var enqueueScript = redis.NewScript(enqueueScriptSource)

// enqueueInOne sends enqueueScript for asynq's script cmd (of kind "p" or
// "s") and answers cmd as asynq's script would have. A Redis that has not
// loaded the script yet (NOSCRIPT) gets its source, once.
func enqueueInOne(ctx context.Context, next redis.ProcessHook, cmd *redis.Cmd, kind, queue, msg string, ix *indexEntry, seq *seqEntry) error {
	keys, argv, _ := asynqkey.Script(cmd.Args(), 2, 3)
	args := make([]any, 0, 3+6+16)
	args = append(args, "evalsha", enqueueScript.Hash(), 2)
	args = append(args, keys...)
	if ix != nil {
		args = append(args, ix.key)
	}
	var member string
	if seq != nil {
		var counter, set string
		counter, set, member = seq.keys()
		args = append(args, counter, set)
	}
	args[2] = len(args) - 3
	first := argv[0]
	mode, body, sep, tag := "", "", "", ""
	if seq != nil {
		mode = "g"
		if seq.given == "" {
			rest, b, sp, tg, err := splitPayload(argv[0])
			if err != nil {
				cmd.SetErr(err)
				return err
			}
			mode, first, body, sep, tag = "n", rest, b, sp, tg
		}
	}
	args = append(args, first, argv[1], argv[2], kind, WakeChannel(queue), msg)
	if ix != nil {
		args = append(args, ix.id, ix.value, ix.ttl.Milliseconds())
	} else {
		args = append(args, "", "", 0)
	}
	if seq != nil {
		args = append(args, mode, body, sep, tag, seq.given, SequenceTTL.Milliseconds(), member)
	} else {
		args = append(args, "")
	}
	one := redis.NewCmd(ctx, args...)
	err := next(ctx, one)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		args[0], args[1] = "eval", enqueueScriptSource
		one = redis.NewCmd(ctx, args...)
		err = next(ctx, one)
	}
	if err != nil {
		cmd.SetErr(err)
		return err
	}
	res, _ := one.Val().([]any)
	if len(res) != 2 {
		err := fmt.Errorf("enqueue script: unexpected answer %v", one.Val())
		cmd.SetErr(err)
		return err
	}
	stored, _ := res[0].(int64)
	index, _ := res[1].(int64)
	cmd.SetVal(stored)
	if ix != nil {
		ix.done, ix.present, ix.failed = true, index == 1, index == 2
	}
	if seq != nil {
		seq.taken = true
	}
	return nil
}

// enqueuedQueue recognises asynq's enqueue script (KEYS: the task hash and
// the queue's pending list) and schedule script (the task hash and the
// scheduled set; ARGV[2] the due Unix second) and returns the queue and
// the wake-up message. Anything else, including a future asynq that
// enqueues differently, is not recognised: its jobs are found by polling.
func enqueuedQueue(args []any) (queue, msg string, ok bool) {
	keys, argv, ok := asynqkey.Script(args, 2, 2)
	if !ok {
		return "", "", false
	}
	task, _ := keys[0].(string)
	list, _ := keys[1].(string)
	queue, _, ok = asynqkey.ParseTask(task)
	if !ok {
		return "", "", false
	}
	switch list {
	case asynqkey.Pending(queue):
		return queue, "p", true
	case asynqkey.Scheduled(queue):
		var due int64
		switch v := argv[1].(type) {
		case int64:
			due = v
		case int:
			due = int64(v)
		default:
			return "", "", false
		}
		return queue, "s" + strconv.FormatInt(due, 10), true
	}
	return "", "", false
}
