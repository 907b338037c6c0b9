package partner

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/internal/eventorder"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Defaults of StateConfig.
const (
	DefaultBreakerFailures = 5
	DefaultBreakerProbe    = 30 * time.Second
	DefaultMaxWaiting      = 10000
	DefaultOrderRecheck    = time.Minute
	DefaultOrphanGrace     = time.Minute
)

// waitingGrace is how long a delivery stays in its partner's waiting set
// after the end of its wait: a job that has not come back to admit by
// then (dead-lettered, deleted) no longer waits, and one that is late is
// due anyway, so waking it early is moot. The set expires this long after
// its latest wait ends.
const waitingGrace = 10 * time.Minute

// Partner states of Status.State.
const (
	StateHealthy  = "healthy"
	StateOpen     = "open"
	StateDisabled = "disabled"
)

// Alert kinds passed to StateConfig.Alert.
const (
	AlertPartnerDisabled = "escrowjobs.partner_disabled"
)

// knownKey is the set of partner IDs of the registry in force (written on
// every load), so the monitor and jobctl can list partners without the
// registry file.
const knownKey = "escrowjobs:partners"

// Keys of one partner share a hash tag, so the scripts work on Redis
// Cluster.
func stateKey(id string) string   { return "escrowjobs:partner:{" + id + "}" }
func probeKey(id string) string   { return stateKey(id) + ":probe" }
func slotsKey(id string) string   { return stateKey(id) + ":slots" }
func bucketKey(id string) string  { return stateKey(id) + ":bucket" }
func waitingKey(id string) string { return stateKey(id) + ":waiting" }
func statsKey(id string) string   { return stateKey(id) + ":stats" }
func parkedKey(id string) string  { return stateKey(id) + ":parked" }
func behindKey(id string) string  { return stateKey(id) + ":behind" }

// stepKey holds the redelivery step a job is on; it shares its partner's
// hash tag so a delivery's outcome script can clear it.
func stepKey(partner, jobID string) string { return stateKey(partner) + ":step:" + jobID }

// StateConfig configures NewState. A number that is zero or negative takes
// its default.
type StateConfig struct {
	// Redis holds the state; required.
	Redis redis.UniversalClient
	// BreakerFailures is how many consecutive transient failures open a
	// partner's circuit (WEBHOOK_BREAKER_FAILURES, default 5).
	BreakerFailures int
	// BreakerProbe is how often one delivery is let through to a partner
	// whose circuit is open (WEBHOOK_BREAKER_PROBE, default 30 s).
	BreakerProbe time.Duration
	// Lease bounds how long a crashed worker's concurrency slot stays
	// taken; default 2 × DefaultTimeout + 10 s. It must exceed the
	// sender's timeout.
	Lease time.Duration
	// MaxWaiting bounds the deliveries a partner's waiting set names
	// (default 10000): beyond it, those whose wait ends first are dropped
	// from it (they still come back at the end of their wait; only the
	// early wake-up when the circuit closes is lost).
	MaxWaiting int
	// Alert is told when a partner is disabled (410 Gone); may be nil.
	Alert func(ctx context.Context, kind, partner, reason string)
	// OrderRecheck is how long a delivery to an "ordered" partner that
	// waits for an earlier event of its escrow stays away before it looks
	// again (default 1 min): the release of the event ahead of it wakes it
	// at once; this only bounds the wait when that wake-up is lost.
	OrderRecheck time.Duration
	// OrphanGrace is how long the event ahead of a waiting one may be
	// without a job (its enqueue failed after it was registered, or asynq
	// lost it and it is no dead letter) before it is dropped from the
	// order (default 1 min; an enqueue gives up after 2 s).
	OrphanGrace time.Duration
}

// State is the per-partner delivery state every worker process shares in
// Redis: the circuit (consecutive transient failures, the probe), the
// throttle of a Retry-After, the disabled flag, the concurrency slots (with
// leases, so a crashed worker does not leak them), the token bucket of
// ratePerSecond, the deliveries waiting, and the counters of the metrics.
type State struct {
	rc  redis.UniversalClient
	cfg StateConfig
}

// NewState returns the partner state over cfg.Redis.
func NewState(cfg StateConfig) (*State, error) {
	if cfg.Redis == nil {
		return nil, errors.New("webhook state: no Redis client")
	}
	// Unset (zero or negative) numbers take their defaults.
	cfg.BreakerFailures = cmp.Or(max(cfg.BreakerFailures, 0), DefaultBreakerFailures)
	cfg.BreakerProbe = cmp.Or(max(cfg.BreakerProbe, 0), DefaultBreakerProbe)
	cfg.Lease = cmp.Or(max(cfg.Lease, 0), 2*DefaultTimeout+10*time.Second)
	cfg.MaxWaiting = cmp.Or(max(cfg.MaxWaiting, 0), DefaultMaxWaiting)
	cfg.OrderRecheck = cmp.Or(max(cfg.OrderRecheck, 0), DefaultOrderRecheck)
	cfg.OrphanGrace = cmp.Or(max(cfg.OrphanGrace, 0), DefaultOrphanGrace)
	return &State{rc: cfg.Redis, cfg: cfg}, nil
}

// admission is the answer of admit.
type admission struct {
	token    string // the concurrency slot; release it
	probe    bool   // the circuit is open and this delivery is its probe
	wait     *WaitError
	disabled bool
}

// admitScript decides whether a delivery to one partner may start now.
// KEYS: state, probe, slots, bucket, waiting, behind. ARGV: failures threshold,
// probe ms, max concurrency, lease ms, rate per second (0: none), token,
// job ID, max waiting, waiting grace ms. Answers {"ok", probe} | {"wait",
// ms, reason} | {"disabled"}; "ok" and "disabled" take the job out of the
// partner's set of deliveries waiting in order (behind): it no longer
// waits for an earlier event. A wait also trims the waiting set (entries
// whose wait ended more than the grace ago, then the soonest beyond max
// waiting) and keeps it expiring the grace after its latest wait.
var admitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local threshold, probeMs = tonumber(ARGV[1]), tonumber(ARGV[2])
local maxConc, leaseMs, rate = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local function wait(ms, reason)
  if ms < 1 then ms = 1 end
  local maxWaiting, grace = tonumber(ARGV[8]), tonumber(ARGV[9])
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - grace)
  redis.call('ZADD', KEYS[5], now + ms, ARGV[7])
  local n = redis.call('ZCARD', KEYS[5])
  if n > maxWaiting then redis.call('ZREMRANGEBYRANK', KEYS[5], 0, n - maxWaiting - 1) end
  if redis.call('PTTL', KEYS[5]) < ms + grace then redis.call('PEXPIRE', KEYS[5], ms + grace) end
  return {'wait', ms, reason}
end
local st = redis.call('HMGET', KEYS[1], 'disabled', 'throttleUntil', 'failures')
if st[1] == '1' then
  redis.call('ZREM', KEYS[5], ARGV[7])
  redis.call('ZREM', KEYS[6], ARGV[7])
  return {'disabled'}
end
local tu = tonumber(st[2] or '0') or 0
if tu > now then return wait(tu - now, 'throttled') end
local probe = 0
if (tonumber(st[3] or '0') or 0) >= threshold then
  local pttl = redis.call('PTTL', KEYS[2])
  if pttl > 0 then return wait(pttl, 'open') end
  probe = 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= maxConc then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  local ms = 1000
  if first[2] and tonumber(first[2]) - now < ms then ms = tonumber(first[2]) - now end
  return wait(ms, 'concurrency')
end
if rate > 0 then
  local b = redis.call('HMGET', KEYS[4], 'tokens', 'at')
  local burst = math.max(1, rate)
  local tokens = tonumber(b[1] or '') or burst
  local at = tonumber(b[2] or '') or now
  tokens = math.min(burst, tokens + (now - at) * rate / 1000)
  if tokens < 1 then
    redis.call('HSET', KEYS[4], 'tokens', tostring(tokens), 'at', now)
    return wait(math.ceil((1 - tokens) * 1000 / rate), 'rate')
  end
  redis.call('HSET', KEYS[4], 'tokens', tostring(tokens - 1), 'at', now)
  redis.call('PEXPIRE', KEYS[4], math.ceil(2000 * burst / rate) + 1000)
end
if probe == 1 then redis.call('SET', KEYS[2], '1', 'PX', probeMs) end
redis.call('ZADD', KEYS[3], now + leaseMs, ARGV[6])
redis.call('PEXPIRE', KEYS[3], leaseMs)
redis.call('ZREM', KEYS[5], ARGV[7])
redis.call('ZREM', KEYS[6], ARGV[7])
return {'ok', probe}
`)

// waitReasons maps the script's reasons to WaitError's.
var waitReasons = map[string]string{
	"throttled": WaitThrottled, "open": WaitCircuitOpen, "concurrency": WaitConcurrency, "rate": WaitRate,
}

// admit takes a concurrency slot (and a rate token, and the probe of an
// open circuit) for one delivery of jobID to partner, or says how long to
// wait, or that the partner is disabled.
func (s *State) admit(ctx context.Context, partner, jobID string, l Limits) (admission, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	res, err := admitScript.Run(ctx, s.rc,
		[]string{stateKey(partner), probeKey(partner), slotsKey(partner), bucketKey(partner), waitingKey(partner), behindKey(partner)},
		s.cfg.BreakerFailures, s.cfg.BreakerProbe.Milliseconds(), max(l.MaxConcurrency, 1), s.cfg.Lease.Milliseconds(),
		strconv.FormatFloat(l.RatePerSecond, 'f', -1, 64), token, jobID, s.cfg.MaxWaiting, waitingGrace.Milliseconds(),
	).Slice()
	if err != nil {
		return admission{}, fmt.Errorf("partner %s: admit: %w", partner, err)
	}
	switch res[0] {
	case "ok":
		return admission{token: token, probe: res[1] == int64(1)}, nil
	case "disabled":
		return admission{disabled: true}, nil
	case "wait":
		ms, _ := res[1].(int64)
		reason, _ := res[2].(string)
		return admission{wait: &WaitError{Partner: partner, Reason: waitReasons[reason], Until: time.Now().Add(time.Duration(ms) * time.Millisecond)}}, nil
	}
	return admission{}, fmt.Errorf("partner %s: admit: unexpected answer %v", partner, res)
}

// Outcomes of a delivery, as the circuit counts them.
type verdict int

const (
	// verdictAnswered: the partner answered (2xx, or a 4xx that is its
	// verdict on this event): the circuit closes.
	verdictAnswered verdict = iota
	// verdictTransient: timeout, network error, 5xx, 408/409/425 and a 429
	// or 503 without Retry-After: counts towards opening the circuit.
	verdictTransient
	// verdictThrottled: 429/503 with Retry-After: the partner is paused,
	// the circuit is left as it is.
	verdictThrottled
	// verdictNone: nothing was learned about the partner (our context
	// ended, the address was refused).
	verdictNone
)

// latencyBuckets are the upper bounds (seconds) of the delivery latency
// histogram.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// recordScript releases the slot and records an outcome; a delivery clears
// the job's redelivery step.
// KEYS: state, probe, slots, stats, step. ARGV: token, outcome, probe ms,
// threshold, throttle ms, latency µs, bucket index (-1: none), delivered.
// Returns the consecutive failures after the outcome.
var recordScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[3], ARGV[1])
local o = ARGV[2]
local f = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') or 0
if o == 'answered' then
  redis.call('HSET', KEYS[1], 'failures', 0, 'lastSuccessAt', now)
  redis.call('HDEL', KEYS[1], 'openedAt')
  redis.call('DEL', KEYS[2])
  f = 0
elseif o == 'transient' then
  f = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  redis.call('HSET', KEYS[1], 'lastFailureAt', now)
  if f == tonumber(ARGV[4]) then
    redis.call('HSET', KEYS[1], 'openedAt', now)
    redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  end
elseif o == 'throttled' then
  local untilMs = now + tonumber(ARGV[5])
  local cur = tonumber(redis.call('HGET', KEYS[1], 'throttleUntil') or '0') or 0
  if untilMs > cur then redis.call('HSET', KEYS[1], 'throttleUntil', untilMs) end
end
if o ~= 'none' then
  redis.call('HINCRBY', KEYS[4], 'attempts', 1)
  if ARGV[8] == '1' then
    redis.call('HINCRBY', KEYS[4], 'delivered', 1)
    redis.call('DEL', KEYS[5])
  else redis.call('HINCRBY', KEYS[4], 'failed', 1) end
  redis.call('HINCRBY', KEYS[4], 'latency_count', 1)
  redis.call('HINCRBY', KEYS[4], 'latency_sum_us', ARGV[6])
  if ARGV[7] ~= '-1' then redis.call('HINCRBY', KEYS[4], 'le_' .. ARGV[7], 1) end
end
return f
`)

var verdictNames = map[verdict]string{verdictAnswered: "answered", verdictTransient: "transient", verdictThrottled: "throttled", verdictNone: "none"}

// record releases a's slot and records the outcome of the delivery. It
// returns the partner's consecutive transient failures afterwards.
func (s *State) record(ctx context.Context, partner, jobID string, a admission, o verdict, delivered bool, latency, throttle time.Duration) (int, error) {
	bucket := -1
	for i, ub := range latencyBuckets {
		if latency.Seconds() <= ub {
			bucket = i
			break
		}
	}
	d := "0"
	if delivered {
		d = "1"
	}
	n, err := recordScript.Run(ctx, s.rc, []string{stateKey(partner), probeKey(partner), slotsKey(partner), statsKey(partner), stepKey(partner, jobID)},
		a.token, verdictNames[o], s.cfg.BreakerProbe.Milliseconds(), s.cfg.BreakerFailures, throttle.Milliseconds(),
		latency.Microseconds(), bucket, d).Int()
	if err != nil {
		return 0, fmt.Errorf("partner %s: record outcome: %w", partner, err)
	}
	return n, nil
}

// disable marks partner disabled (its endpoint answered 410 Gone) and
// raises the alert. It reports whether this call disabled it.
func (s *State) disable(ctx context.Context, partner, reason string, alert bool) (bool, error) {
	n, err := s.rc.HSetNX(ctx, stateKey(partner), "disabled", "1").Result()
	if err != nil {
		return false, fmt.Errorf("partner %s: disable: %w", partner, err)
	}
	if !n {
		// Already disabled (or re-enabled with "0"): set it explicitly.
		prev, _ := s.rc.HGet(ctx, stateKey(partner), "disabled").Result()
		if prev == "1" {
			return false, nil
		}
		if err := s.rc.HSet(ctx, stateKey(partner), "disabled", "1").Err(); err != nil {
			return false, fmt.Errorf("partner %s: disable: %w", partner, err)
		}
	}
	_ = s.rc.HSet(ctx, stateKey(partner), "disabledReason", reason, "disabledAt", time.Now().UnixMilli()).Err()
	if alert && s.cfg.Alert != nil {
		s.cfg.Alert(ctx, AlertPartnerDisabled, partner, reason)
	}
	return true, nil
}

// Disable turns deliveries to partner off: they become dead letters with
// reason "endpoint disabled" until Enable. reason is recorded.
func (s *State) Disable(ctx context.Context, partner, reason string) error {
	_, err := s.disable(ctx, partner, reason, false)
	return err
}

// Enable turns deliveries to partner back on and closes its circuit. The
// dead letters that waited are redelivered by Redelivery.Enable, which
// calls this.
func (s *State) Enable(ctx context.Context, partner string) error {
	pipe := s.rc.TxPipeline()
	pipe.HSet(ctx, stateKey(partner), "disabled", "0", "failures", 0)
	pipe.HDel(ctx, stateKey(partner), "disabledReason", "disabledAt", "throttleUntil", "openedAt")
	pipe.Del(ctx, probeKey(partner))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("partner %s: enable: %w", partner, err)
	}
	return nil
}

// IsKnown reports whether the registry in force (as the workers last
// recorded it) has partner.
func (s *State) IsKnown(ctx context.Context, partner string) bool {
	ok, _ := s.rc.SIsMember(ctx, knownKey, partner).Result()
	return ok
}

// Known records the partner IDs of the registry in force.
func (s *State) Known(ctx context.Context, ids []string) error {
	pipe := s.rc.TxPipeline()
	pipe.Del(ctx, knownKey)
	if len(ids) > 0 {
		pipe.SAdd(ctx, knownKey, toAny(ids)...)
	}
	_, err := pipe.Exec(ctx)
	return err
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Status is one partner's state, in the JSON shape of GET /api/v1/partners.
type Status struct {
	ID string `json:"id"`
	// State is healthy, open (the circuit is open) or disabled.
	State               string     `json:"state"`
	ConsecutiveFailures int        `json:"consecutiveFailures"`
	LastSuccessAt       *time.Time `json:"lastSuccessAt"`
	// Waiting counts deliveries waiting for the partner (circuit, throttle,
	// limits), plus the dead letters kept for it while disabled or unknown.
	Waiting int `json:"waiting"`
	// ThrottledUntil is set while a Retry-After pause is in force.
	ThrottledUntil *time.Time `json:"throttledUntil,omitempty"`
	// Known is false for a partner the registry no longer has.
	Known bool `json:"known"`
	// Ordered is true for a partner that gets the events of one escrow
	// strictly in sequence (registry "ordered").
	Ordered bool `json:"ordered"`
	// WaitingInOrder counts its deliveries that wait behind an earlier
	// event of their escrow.
	WaitingInOrder int `json:"waitingInOrder"`
}

// Statuses returns the state of every partner the registry has, plus any
// partner that is disabled or has deliveries waiting, sorted by ID.
func (s *State) Statuses(ctx context.Context, extra ...string) ([]Status, error) {
	known, err := s.rc.SMembers(ctx, knownKey).Result()
	if err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	ids := slices.Sorted(slices.Values(append(slices.Clone(known), extra...)))
	ids = slices.Compact(ids)
	out := make([]Status, 0, len(ids))
	for _, id := range ids {
		st, err := s.Status(ctx, id)
		if err != nil {
			return nil, err
		}
		st.Known = slices.Contains(known, id)
		out = append(out, st)
	}
	return out, nil
}

// Status returns one partner's state.
func (s *State) Status(ctx context.Context, id string) (Status, error) {
	pipe := s.rc.Pipeline()
	h := pipe.HMGet(ctx, stateKey(id), "disabled", "failures", "lastSuccessAt", "throttleUntil", "openedAt")
	waiting := pipe.ZCard(ctx, waitingKey(id))
	parked := pipe.SCard(ctx, parkedKey(id))
	ordered := pipe.SIsMember(ctx, orderedKey, id)
	behind := pipe.ZCount(ctx, behindKey(id), strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Status{}, fmt.Errorf("partner %s: %w", id, err)
	}
	v := h.Val()
	st := Status{ID: id, State: StateHealthy, Waiting: int(waiting.Val() + parked.Val()), Known: true,
		Ordered: ordered.Val(), WaitingInOrder: int(behind.Val())}
	str := func(i int) string { s, _ := v[i].(string); return s }
	st.ConsecutiveFailures, _ = strconv.Atoi(str(1))
	if ms, err := strconv.ParseInt(str(2), 10, 64); err == nil {
		t := time.UnixMilli(ms).UTC()
		st.LastSuccessAt = &t
	}
	if ms, err := strconv.ParseInt(str(3), 10, 64); err == nil && time.UnixMilli(ms).After(time.Now()) {
		t := time.UnixMilli(ms).UTC()
		st.ThrottledUntil = &t
	}
	switch {
	case str(0) == "1":
		st.State = StateDisabled
	case str(4) != "":
		// Set by the outcome script when the failures reach the
		// threshold, cleared by an answer: no reader needs the threshold.
		st.State = StateOpen
	}
	return st, nil
}

// waiting returns the IDs of the jobs waiting for partner.
func (s *State) waiting(ctx context.Context, partner string) ([]string, error) {
	return s.rc.ZRange(ctx, waitingKey(partner), 0, -1).Result()
}

// wake runs the deliveries waiting for partner now (its circuit closed),
// instead of at the end of their wait.
func (s *State) wake(ctx context.Context, partner string, log *slog.Logger) {
	ids, err := s.waiting(ctx, partner)
	if err != nil {
		log.WarnContext(ctx, "webhook: cannot list the deliveries waiting for the partner; they run when their wait ends", "partner", partner, "error", err)
		return
	}
	woken := map[string]bool{}
	for _, id := range ids {
		q := queueOf(id)
		// All keys of a queue share its hash tag: one slot on a Cluster.
		n, err := eventorder.Wake(ctx, s.rc, q, id)
		if err != nil {
			log.DebugContext(ctx, "webhook: waiting delivery not woken", "partner", partner, "task_id", id, "error", err)
		}
		switch n {
		case 1:
			woken[q] = true
		case -1:
			s.unwait(ctx, partner, id)
		}
	}
	for q := range woken {
		s.announce(ctx, q)
	}
}

// announce tells idle workers that queue q has a job, as an enqueue does
// (a lost wake-up costs their fallback poll).
func (s *State) announce(ctx context.Context, q string) {
	if _, cluster := s.rc.(*redis.ClusterClient); cluster {
		_ = s.rc.SPublish(ctx, tasks.WakeChannel(q), "p").Err()
	} else {
		_ = s.rc.Publish(ctx, tasks.WakeChannel(q), "p").Err()
	}
}

// unwait takes jobID out of partner's waiting set: it no longer waits (it
// is a dead letter, or gone).
func (s *State) unwait(ctx context.Context, partner, jobID string) {
	pipe := s.rc.Pipeline()
	pipe.ZRem(ctx, waitingKey(partner), jobID)
	pipe.ZRem(ctx, behindKey(partner), jobID)
	_, _ = pipe.Exec(ctx)
}

// queueOf is the queue of a job ID "<type>:<key>".
func queueOf(jobID string) string {
	typ, _, _ := strings.Cut(jobID, ":")
	if k, err := tasks.Lookup(typ); err == nil {
		return k.Queue
	}
	return "default"
}
