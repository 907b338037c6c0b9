package flows

import (
	"github.com/escrowjobs/escrowjobs/internal/asynqmsg"
	"github.com/escrowjobs/escrowjobs/internal/eventorder"
	"github.com/escrowjobs/escrowjobs/internal/historyindex"
	"github.com/redis/go-redis/v9"
)

// The Redis scripts of a flow. Each touches one key, the flow's hash
// (flowKey: its hash tag is the flow ID), so it is atomic and runs on one
// Cluster node.
//
// The hash holds:
//
//	def          the graph: {name, key, createdAt, steps: [{name, jobId, type, queue, after, dependents, onFailure}]}, dependencies first
//	name, key    the flow's name and key (List reads them)
//	state        running | completed | failed | cancelled
//	createdAt, updatedAt, endedAt   Unix milliseconds (endedAt: when it left running)
//	s:<step>     waiting | pending | completed | failed | blocked | cancelled
//	t:<step>     the step's job, serialized (taskSpec), to enqueue it later
//	e:<step>     the reason its job was dead-lettered

// startScript creates the flow unless it exists.
//
// KEYS[1] the flow's hash; ARGV[1] the expiry in milliseconds; ARGV[2…]
// field, value pairs. Returns {1} when it created the flow, else {0,
// task…}: the serialized jobs of the existing flow's pending steps (a
// start that died before enqueueing them left them pending).
var startScript = redis.NewScript(`
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  local out = {0}
  local defj = redis.call('HGET', key, 'def')
  if not defj then return out end
  local def = cjson.decode(defj)
  for _, s in ipairs(def.steps) do
    if redis.call('HGET', key, 's:' .. s.name) == 'pending' then
      local t = redis.call('HGET', key, 't:' .. s.name)
      if t then table.insert(out, t) end
    end
  end
  return out
end
redis.call('HSET', key, unpack(ARGV, 2))
redis.call('PEXPIRE', key, ARGV[1])
return {1}
`)

// transitionScript applies one event to a step and recomputes the flow.
//
// KEYS[1] the flow's hash; ARGV: op (complete | fail | requeue | discard),
// step, now (Unix ms), expiry (ms), reason (fail), inline ("1" on one
// Redis, "" on a Cluster), now (Unix ns), flow ID, flow name, the indexes
// of all, running and failed flows, the counters' hash, now as a
// history stamp (historyindex.Stamp), then trace header name, value pairs
// for the jobs it enqueues.
//
//   - complete: the step is completed.
//   - fail: the step is failed (unless completed); its reason is kept.
//   - requeue: a failed step is pending again (its job was put back).
//   - discard: the step is cancelled and so is the flow.
//
// Then, in a flow that is not cancelled: a waiting step with a failed or
// blocked dependency is blocked, a blocked one without is waiting again;
// the flow is failed while a regular step is failed, completed once every
// regular step is, else running. A waiting regular step whose
// dependencies have all completed becomes pending and its job is
// returned; so is one that was already pending among the completed
// step's dependents (an advancement that died before its enqueue is
// repeated by the step's rerun). In a failed flow, waiting on-failure
// steps become pending and are returned (and pending ones again on a
// repeated fail). A completed flow cancels the on-failure steps that never
// ran; a cancelled one cancels its waiting and blocked steps.
//
// With inline (one Redis; the keys below are not in the flow's slot, so
// never on a Cluster), a complete enqueues the jobs it makes ready that
// have their q:<step> (or older m:<step>) field (inline.go) itself, as
// tasks.Client.Enqueue would: asynq's task hash and pending list (or
// scheduled set; a job whose task hash exists is a duplicate and left
// alone, taking no sequence), asynq's set of queues, the escrow's history
// line, a partner event's sequence and order registration, and the
// wake-up; and a change of the flow's state moves it between the indexes
// and counts it (what Store.stateChanged does on a Cluster).
//
// Returns {old flow state, new flow state, status, jobs enqueued here,
// task…} where status is ok, noflow (no such flow) or nostep (no such
// step), and the tasks are the serialized jobs left to the caller.
var transitionScript = redis.NewScript(historyindex.Lua + eventorder.RegisterLua + asynqmsg.Lua + `
local key = KEYS[1]
local op, name, now, ttl, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local defj = redis.call('HGET', key, 'def')
if not defj then return {'', '', 'noflow'} end
local steps = cjson.decode(defj).steps
local fields = {}
for i, s in ipairs(steps) do fields[i] = 's:' .. s.name end
local vals = redis.call('HMGET', key, unpack(fields))
local st, orig, this = {}, {}, nil
for i, s in ipairs(steps) do
  local v = vals[i]
  if not v then v = 'waiting' end
  st[s.name] = v
  orig[s.name] = v
  if s.name == name then this = s end
end
local old = redis.call('HGET', key, 'state') or 'running'
if not this then return {old, old, 'nostep'} end
local flow = old
local cur = st[name]
if op == 'complete' then
  st[name] = 'completed'
elseif op == 'fail' then
  if cur ~= 'completed' then
    st[name] = 'failed'
    redis.call('HSET', key, 'e:' .. name, reason)
  end
elseif op == 'requeue' then
  if cur == 'failed' then st[name] = 'pending' end
elseif op == 'discard' then
  if cur ~= 'completed' then st[name] = 'cancelled' end
  flow = 'cancelled'
end
local out = {}
if flow == 'cancelled' then
  for _, s in ipairs(steps) do
    local c = st[s.name]
    if c == 'waiting' or c == 'blocked' then st[s.name] = 'cancelled' end
  end
else
  for _, s in ipairs(steps) do
    if not s.onFailure then
      local bad = false
      for _, p in ipairs(s.after) do
        local ps = st[p]
        if ps == 'failed' or ps == 'blocked' or ps == 'cancelled' then bad = true end
      end
      local c = st[s.name]
      if bad and c == 'waiting' then st[s.name] = 'blocked'
      elseif (not bad) and c == 'blocked' then st[s.name] = 'waiting' end
    end
  end
  local failed, done = false, true
  for _, s in ipairs(steps) do
    if not s.onFailure then
      if st[s.name] == 'failed' then failed = true end
      if st[s.name] ~= 'completed' then done = false end
    end
  end
  if failed then flow = 'failed' elseif done then flow = 'completed' else flow = 'running' end
  local dependent = {}
  if op == 'complete' then
    for _, d in ipairs(this.dependents) do dependent[d] = true end
  end
  for _, s in ipairs(steps) do
    local c = st[s.name]
    if not s.onFailure then
      if c == 'waiting' or (c == 'pending' and dependent[s.name]) then
        local ready = true
        for _, p in ipairs(s.after) do
          if st[p] ~= 'completed' then ready = false end
        end
        if ready then
          st[s.name] = 'pending'
          table.insert(out, s.name)
        end
      end
    elseif flow == 'failed' then
      if c == 'waiting' or (c == 'pending' and op == 'fail') then
        st[s.name] = 'pending'
        table.insert(out, s.name)
      end
    elseif flow == 'completed' and c == 'waiting' then
      st[s.name] = 'cancelled'
    end
  end
end
local args = {'state', flow, 'updatedAt', now}
for _, s in ipairs(steps) do
  if st[s.name] ~= orig[s.name] then
    table.insert(args, 's:' .. s.name)
    table.insert(args, st[s.name])
  end
end
if flow ~= old then
  if flow == 'running' then
    redis.call('HDEL', key, 'endedAt')
  else
    table.insert(args, 'endedAt')
    table.insert(args, now)
  end
end
redis.call('HSET', key, unpack(args))
redis.call('PEXPIRE', key, ttl)
local inline = ARGV[6] == '1'
local nowns = ARGV[7]
local res = {old, flow, 'ok', 0}
local function header(tag, k, v) return field(tag, field('\10', k) .. field('\18', v)) end
local function enqueue(m)
  local nl = string.find(m, '\n', 1, true)
  local h = cjson.decode(string.sub(m, 1, nl - 1))
  if redis.call('EXISTS', h.tk) == 1 then return end
  local rest = string.sub(m, nl + 1, nl + h.rl)
  local payload = string.sub(m, nl + h.rl + 1)
  if h.sc then
    local n = register(h.sc, h.so, h.sttl, h.sm or '', h.sg or '')
    if not h.sg then payload = with_sequence(payload, h.sp or '', n) end
  end
  local ht = string.char(unpack(h.ht))
  local ready, due = nowns, nil
  if h.at then
    ready = h.at
    if tonumber(h.at) > tonumber(nowns) then due = h.ats end
  elseif h.dl then
    local r = tonumber(nowns) + h.dl * 1e6
    ready, due = string.format('%.0f', r), math.floor(r / 1e9)
  end
  local msg = {rest, field(string.char(unpack(h.pt)), payload)}
  if h.ra then msg[#msg + 1] = header(ht, h.ra, ready) end
  if not h.tp then
    for i = 15, #ARGV, 2 do msg[#msg + 1] = header(ht, ARGV[i], ARGV[i + 1]) end
  end
  msg = table.concat(msg)
  redis.call('SADD', 'asynq:queues', h.q)
  if due then
    redis.call('HSET', h.tk, 'msg', msg, 'state', 'scheduled')
    redis.call('ZADD', h.zk, due, h.id)
    redis.call('PUBLISH', h.wk, 's' .. due)
  else
    redis.call('HSET', h.tk, 'msg', msg, 'state', 'pending', 'pending_since', nowns)
    redis.call('LPUSH', h.lk, h.id)
    redis.call('PUBLISH', h.wk, 'p')
  end
  local httl = h.httl
  if httl and tonumber(ready) > tonumber(nowns) then httl = httl + math.floor((tonumber(ready) - tonumber(nowns)) / 1e6) end
  if h.hl then
    index(h.hl, h.id, ARGV[14] .. (h.hr or ''), httl, 'set')
  elseif h.hk then
    redis.call('HSET', h.hk, h.id, h.q .. ' ' .. nowns)
    if redis.call('PTTL', h.hk) < httl then redis.call('PEXPIRE', h.hk, httl) end
  end
  res[4] = res[4] + 1
end
for _, n in ipairs(out) do
  local m = nil
  if inline and op == 'complete' then
    m = redis.call('HGET', key, 'q:' .. n)
    if not m then m = redis.call('HGET', key, 'm:' .. n) end
  end
  if m then
    enqueue(m)
  else
    local t = redis.call('HGET', key, 't:' .. n)
    if t then table.insert(res, t) end
  end
end
if inline and flow ~= old then
  local id, nowms, all, running, failed = ARGV[8], tonumber(now), ARGV[10], ARGV[11], ARGV[12]
  local function index(ix)
    local created = redis.call('ZSCORE', all, id)
    if not created then created = nowms end
    redis.call('ZADD', ix, created, id)
    redis.call('ZREMRANGEBYSCORE', ix, '-inf', nowms - ttl)
    redis.call('PEXPIRE', ix, ttl)
  end
  if flow == 'running' then
    redis.call('ZREM', failed, id)
    index(running)
  elseif flow == 'failed' then
    redis.call('ZREM', running, id)
    index(failed)
  else
    redis.call('ZREM', running, id)
    redis.call('ZREM', failed, id)
  end
  local event = nil
  if flow == 'completed' or flow == 'failed' or flow == 'cancelled' then event = flow end
  if event then
    redis.call('HINCRBY', ARGV[13], event .. ':' .. ARGV[9], 1)
    redis.call('PEXPIRE', ARGV[13], ttl)
  end
end
return res
`)
