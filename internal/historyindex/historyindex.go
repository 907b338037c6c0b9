// Package historyindex is the Redis form of an escrow's history index: the
// string of one line per job that package tasks writes at enqueue (and
// reads for History), and that the flows' advancement script writes for
// the steps it enqueues itself. One definition, so both write the same
// lines.
package historyindex

import (
	"strconv"
	"time"
)

// Key is the Redis string of escrow tx's jobs, one line per job:
// "<job ID> <enqueued-at>[ <queue>]\n", the enqueue time as Stamp gives
// it, the queue only when it is not the job type's.
func Key(tx string) string { return "escrowjobs:ix:" + tx }

// Stamp is an enqueue time as a line holds it: Unix nanoseconds in base 36.
func Stamp(at time.Time) string { return strconv.FormatInt(at.UnixNano(), 36) }

// Lua defines, for a script that includes it, index(key, id, rest, ttl,
// mode), which writes the line "<id> <rest>\n" of one job into an
// escrow's index: mode "nx" only when the job has no line yet, "set" in
// place of the line it has. The expiry (ttl, ms) is set, never shortened,
// only when it wrote. It returns 1 when it wrote, 0 when the job had its
// line (mode "nx").
const Lua = `
local function index(k, id, rest, ttl, mode)
  local line = id .. ' ' .. rest .. '\n'
  local s = redis.call('GET', k)
  if not s then
    redis.call('SET', k, line, 'PX', ttl)
    return 1
  end
  local at = string.find('\n' .. s, '\n' .. id .. ' ', 1, true)
  if at then
    if mode ~= 'set' then return 0 end
    local to = string.find(s, '\n', at, true) or #s
    redis.call('SET', k, string.sub(s, 1, at - 1) .. string.sub(s, to + 1) .. line, 'KEEPTTL')
  else
    redis.call('APPEND', k, line)
  end
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
  return 1
end
`

// Suffix is what a line holds after the stamp: "" when queue is the job
// type's own (typeQueue), else " <queue>" (typeQueue "" for a type of no
// known queue).
func Suffix(queue, typeQueue string) string {
	if typeQueue != "" && queue == typeQueue {
		return ""
	}
	return " " + queue
}
