package partner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// DefaultRedeliverySchedule is WEBHOOK_REDELIVERY_SCHEDULE's default: the
// pauses before each automatic redelivery of a transiently failed webhook.
var DefaultRedeliverySchedule = []time.Duration{
	5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 24 * time.Hour, 24 * time.Hour,
}

// RedeliveryJitter is the ± fraction applied to each step.
const RedeliveryJitter = 0.10

// ActorRedelivery is the actor recorded for automatic requeues.
const ActorRedelivery = "redelivery"

// AlertRedeliveryExhausted is the alert kind raised when a dead letter has
// been through every redelivery step and stays open.
const AlertRedeliveryExhausted = "escrowjobs.redelivery_exhausted"

// dueKey is the sorted set of due redeliveries (score: unix ms).
const dueKey = "escrowjobs:redelivery:due"

// webhookType is the task type of partner webhooks.
var webhookType = payloads.WebhookEscrowStatusChanged{}.TaskType()

// DeadLetter is an open dead letter, as Redelivery needs it.
type DeadLetter struct {
	ID      string
	Type    string
	Partner string
	// Error is the last error (it names the reason: "unknown partner",
	// "endpoint disabled", …).
	Error string
}

// ErrStillRunning is returned by DeadLetters.Requeue for a job that is not
// a dead letter yet (its last attempt is still being recorded); try again
// shortly.
var ErrStillRunning = errors.New("job is not archived yet")

// DeadLetters is what Redelivery needs of the dead-letter store;
// LedgerDeadLetters implements it over the dead-letter ledger.
type DeadLetters interface {
	// ListOpen returns the open dead letters of taskType for partner
	// (every partner when "").
	ListOpen(ctx context.Context, taskType, partner string) ([]DeadLetter, error)
	// Requeue runs dead letter id again, with its full retry budget and
	// under the same ID, and records actor and reason.
	Requeue(ctx context.Context, id, actor, reason string) error
}

// RedeliveryConfig configures NewRedelivery.
type RedeliveryConfig struct {
	Redis       redis.UniversalClient
	DeadLetters DeadLetters
	State       *State
	// Registry is the registry in force (Watcher.Registry). Nil outside
	// the worker (monitor, jobctl): the partners the workers recorded in
	// Redis are used instead.
	Registry func() *Registry
	// Schedule is WEBHOOK_REDELIVERY_SCHEDULE (nil: the default).
	Schedule []time.Duration
	// Poll is how often due redeliveries are looked for (default 1 s).
	Poll time.Duration
	// Alert is told when a dead letter has used every step; may be nil.
	Alert  func(ctx context.Context, kind, partner, reason string)
	Logger *slog.Logger
}

// Redelivery brings webhook dead letters back without an operator:
//
//   - a transient failure (the 2/4/8 s run exhausted) is requeued after
//     each step of the schedule, ±10 % jitter, with its full budget and the
//     same webhook-id; after the last step it stays open and an alert goes
//     out;
//   - a delivery dead-lettered because its partner was unknown or disabled
//     is requeued when the partner is added to the registry or enabled.
//
// Which step a job is on lives in Redis (it survives restarts); due
// redeliveries are a sorted set that every worker process polls, each one
// claimed for a lease by one process and removed once it is requeued.
type Redelivery struct {
	cfg RedeliveryConfig
	log *slog.Logger
	// lease is how long a claim holds a due entry (claimLease when 0).
	lease time.Duration
	// afterClaim runs between claiming a due entry and requeueing it;
	// an error stops RunDue there (tests inject a crash).
	afterClaim func() error
}

// NewRedelivery checks cfg.
func NewRedelivery(cfg RedeliveryConfig) (*Redelivery, error) {
	if cfg.Redis == nil || cfg.DeadLetters == nil || cfg.State == nil {
		return nil, errors.New("webhook redelivery: Redis, DeadLetters and State are required")
	}
	if cfg.Schedule == nil {
		cfg.Schedule = DefaultRedeliverySchedule
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Redelivery{cfg: cfg, log: log.With("component", "redelivery")}, nil
}

// ParseSchedule reads a comma-separated list of Go durations
// ("5m,30m,2h"). The error names the bad entry.
func ParseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		d, err := time.ParseDuration(f)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("step %d %q: want a positive duration such as 5m or 24h", i+1, f)
		}
		out = append(out, d)
	}
	return out, nil
}

// dueEntry is a member of dueKey.
type dueEntry struct {
	ID      string `json:"id"`
	Partner string `json:"p"`
	Reason  string `json:"r"`
}

func (r *Redelivery) schedule(ctx context.Context, at time.Time, e dueEntry) error {
	m, _ := json.Marshal(e)
	return r.cfg.Redis.ZAdd(ctx, dueKey, redis.Z{Score: float64(at.UnixMilli()), Member: string(m)}).Err()
}

// Archived is the worker's hook: it runs for every job archived, after it
// is in the dead-letter log, with the error of its last attempt.
func (r *Redelivery) Archived(ctx context.Context, jobID, taskType string, payload []byte, err error) {
	if taskType != webhookType {
		return
	}
	var p struct {
		PartnerID     string `json:"partnerId"`
		TransactionID string `json:"transactionId"`
	}
	_ = json.Unmarshal(payload, &p)
	if p.PartnerID == "" {
		return
	}
	log := r.log.With("task_id", jobID, "task_type", taskType, "partner", p.PartnerID)
	r.cfg.State.unwait(ctx, p.PartnerID, jobID) // a dead letter waits for no circuit
	switch {
	case errors.Is(err, ErrWaitsInOrder):
		// Not a failure: it waited for an earlier event on its last
		// attempt. Its redelivery is scheduled now by the release of the
		// event ahead (State.wakeJob); this is the fallback.
		e := dueEntry{ID: jobID, Partner: p.PartnerID, Reason: "waiting for an earlier event of its escrow"}
		if err := r.schedule(ctx, time.Now().Add(r.cfg.State.cfg.OrderRecheck), e); err != nil {
			log.ErrorContext(ctx, "cannot schedule the redelivery; the dead letter stays open", "error", err)
		}
		return
	case errors.Is(err, ErrUnknownPartner), errors.Is(err, ErrEndpointDisabled):
		if perr := r.cfg.Redis.SAdd(ctx, parkedKey(p.PartnerID), jobID).Err(); perr != nil {
			log.ErrorContext(ctx, "cannot record the dead letter as waiting for its partner; requeue it by hand once the partner is back", "error", perr)
			return
		}
		// The partner may have come back while this job was being archived.
		r.releaseParked(ctx, p.PartnerID)
		return
	case errors.Is(err, asynq.SkipRetry):
		// Permanent: an operator decides. It is a final dead letter, and
		// the later events of its escrow no longer wait for it.
		r.cfg.State.released(ctx, p.TransactionID, p.PartnerID, jobID, log)
		return
	}
	step, serr := r.cfg.Redis.Incr(ctx, stepKey(p.PartnerID, jobID)).Result()
	if serr != nil {
		log.ErrorContext(ctx, "cannot record the redelivery step; the dead letter stays open", "error", serr)
		return
	}
	var total time.Duration
	for _, d := range r.cfg.Schedule {
		total += d
	}
	_ = r.cfg.Redis.Expire(ctx, stepKey(p.PartnerID, jobID), 2*total+48*time.Hour).Err()
	n := len(r.cfg.Schedule)
	if int(step) > n {
		log.ErrorContext(ctx, "webhook redelivery exhausted: the dead letter stays open", "steps", n)
		// A final dead letter: the later events of its escrow go.
		r.cfg.State.released(ctx, p.TransactionID, p.PartnerID, jobID, log)
		if r.cfg.Alert != nil {
			r.cfg.Alert(ctx, AlertRedeliveryExhausted, p.PartnerID, fmt.Sprintf("job %s failed after %d redeliveries", jobID, n))
		}
		return
	}
	d := r.cfg.Schedule[step-1]
	d += time.Duration((rand.Float64()*2 - 1) * RedeliveryJitter * float64(d))
	e := dueEntry{ID: jobID, Partner: p.PartnerID, Reason: fmt.Sprintf("redelivery step %d of %d (%s)", step, n, r.cfg.Schedule[step-1])}
	if err := r.schedule(ctx, time.Now().Add(d), e); err != nil {
		log.ErrorContext(ctx, "cannot schedule the redelivery; the dead letter stays open", "error", err)
		return
	}
	log.InfoContext(ctx, "webhook redelivery scheduled", "step", step, "of", n, "in", d.Round(time.Millisecond).String())
}

// releaseParked schedules now the dead letters parked for partner, if it
// is known and not disabled.
func (r *Redelivery) releaseParked(ctx context.Context, partner string) int {
	if !r.has(ctx, partner) {
		return 0
	}
	st, err := r.cfg.State.Status(ctx, partner)
	if err != nil || st.State == StateDisabled {
		return 0
	}
	ids, err := r.cfg.Redis.SMembers(ctx, parkedKey(partner)).Result()
	if err != nil {
		return 0
	}
	n := 0
	for _, id := range ids {
		if removed, err := r.cfg.Redis.SRem(ctx, parkedKey(partner), id).Result(); err != nil || removed == 0 {
			continue // another process took it
		}
		if err := r.schedule(ctx, time.Now(), dueEntry{ID: id, Partner: partner, Reason: "partner " + partner + " is back"}); err != nil {
			_ = r.cfg.Redis.SAdd(ctx, parkedKey(partner), id).Err()
			continue
		}
		n++
	}
	return n
}

// has reports whether the registry has partner.
func (r *Redelivery) has(ctx context.Context, partner string) bool {
	if r.cfg.Registry != nil {
		return r.cfg.Registry().Has(partner)
	}
	return r.cfg.State.IsKnown(ctx, partner)
}

// adopt schedules the open dead letters of partner whose error contains
// reason (dead letters from before this process, or not parked), once
// across processes.
func (r *Redelivery) adopt(ctx context.Context, partner, reason, why string) int {
	dls, err := r.cfg.DeadLetters.ListOpen(ctx, webhookType, partner)
	if err != nil {
		r.log.WarnContext(ctx, "cannot list dead letters to redeliver", "partner", partner, "error", err)
		return 0
	}
	n := 0
	for _, dl := range dls {
		if !strings.Contains(dl.Error, reason) || !r.has(ctx, dl.Partner) {
			continue
		}
		if ok, _ := r.cfg.Redis.SetNX(ctx, "escrowjobs:redelivery:adopt:"+dl.ID, "1", time.Minute).Result(); !ok {
			continue
		}
		_ = r.cfg.Redis.SRem(ctx, parkedKey(dl.Partner), dl.ID).Err()
		if err := r.schedule(ctx, time.Now(), dueEntry{ID: dl.ID, Partner: dl.Partner, Reason: why}); err == nil {
			n++
		}
	}
	return n
}

// RegistryChanged records the partners of reg and redelivers the dead
// letters of partners that were unknown and now exist.
func (r *Redelivery) RegistryChanged(ctx context.Context, reg *Registry) {
	if err := r.cfg.State.Known(ctx, reg.Partners()); err != nil {
		r.log.WarnContext(ctx, "cannot record the registry's partners in Redis", "error", err)
	}
	off, err := r.cfg.State.recordOrdered(ctx, reg.OrderedPartners())
	if err != nil {
		r.log.WarnContext(ctx, "cannot record the registry's ordered partners in Redis", "error", err)
	}
	for _, p := range off {
		// Its ordering was turned off: what waited behind an earlier
		// event is simply sent.
		if n := r.cfg.State.wakeBehind(ctx, p); n > 0 {
			r.log.InfoContext(ctx, "partner no longer ordered: deliveries that waited for earlier events sent", "partner", p, "count", n)
		}
	}
	n := 0
	for _, p := range reg.Partners() {
		n += r.releaseParked(ctx, p)
	}
	n += r.adopt(ctx, "", ErrUnknownPartner.Error(), "partner added to the registry")
	if n > 0 {
		r.log.InfoContext(ctx, "dead letters of partners added to the registry scheduled for redelivery", "count", n)
	}
}

// Enable turns partner back on (State.Enable) and redelivers the dead
// letters that waited while it was disabled. It returns how many were
// scheduled (and requeued at once). actor is recorded with each requeue.
func (r *Redelivery) Enable(ctx context.Context, partner, actor string) (int, error) {
	if err := r.cfg.State.Enable(ctx, partner); err != nil {
		return 0, err
	}
	r.log.InfoContext(ctx, "partner enabled", "partner", partner, "actor", actor)
	why := "partner " + partner + " enabled by " + actor
	n := r.adopt(ctx, partner, ErrEndpointDisabled.Error(), why)
	n += r.releaseParked(ctx, partner)
	r.RunDue(ctx) // requeue them now, not at the workers' next poll
	return n, nil
}

// Run requeues due redeliveries until ctx is done.
func (r *Redelivery) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	for {
		r.RunDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// claimLease is how long a process holds a due redelivery it claimed:
// past it (the process died between the claim and the requeue) the entry
// is due again and another process takes it.
const claimLease = time.Minute

// claimScript claims a due member of dueKey for ARGV[3] ms: it moves its
// score from the past (ARGV[2], now) to the end of the lease, atomically,
// so one process takes it and it stays in the set until its requeue is
// done.
//
// KEYS[1] dueKey; ARGV[1] the member, ARGV[2] now (unix ms), ARGV[3] lease end (unix ms)
var claimScript = redis.NewScript(`
local s = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not s or tonumber(s) > tonumber(ARGV[2]) then
	return 0
end
redis.call("ZADD", KEYS[1], ARGV[3], ARGV[1])
return 1
`)

// RunDue requeues every redelivery due now; it returns how many it
// requeued.
//
// A due entry is claimed with a lease (claimScript), requeued, and only
// then removed: a process that dies between the claim and the removal
// leaves the entry in the set, due again when the lease ends, and the
// requeue (idempotent: a dead letter requeued already is not open) is
// done by whichever process takes it next. The step and its alert are
// never lost.
func (r *Redelivery) RunDue(ctx context.Context) int {
	lease := r.lease
	if lease <= 0 {
		lease = claimLease
	}
	now := time.Now()
	members, err := r.cfg.Redis.ZRangeByScore(ctx, dueKey, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: 100}).Result()
	if err != nil {
		if ctx.Err() == nil {
			r.log.WarnContext(ctx, "cannot read due redeliveries", "error", err)
		}
		return 0
	}
	n := 0
	for _, m := range members {
		var e dueEntry
		if json.Unmarshal([]byte(m), &e) != nil {
			_ = r.cfg.Redis.ZRem(ctx, dueKey, m).Err()
			continue
		}
		claimed, err := claimScript.Run(ctx, r.cfg.Redis, []string{dueKey}, m, now.UnixMilli(), now.Add(lease).UnixMilli()).Int()
		if err != nil || claimed == 0 {
			continue // another process took it
		}
		if r.afterClaim != nil && r.afterClaim() != nil {
			return n // a crash between the claim and the requeue
		}
		log := r.log.With("task_id", e.ID, "task_type", webhookType, "partner", e.Partner)
		err = r.cfg.DeadLetters.Requeue(ctx, e.ID, ActorRedelivery, e.Reason)
		var notOpen *NotOpenError
		switch {
		case err == nil:
			n++
			log.InfoContext(ctx, "webhook dead letter requeued", "actor", ActorRedelivery, "reason", e.Reason)
			r.done(ctx, m)
		case errors.Is(err, ErrStillRunning):
			_ = r.schedule(ctx, time.Now().Add(r.cfg.Poll), e)
		case errors.As(err, &notOpen):
			log.WarnContext(ctx, "webhook redelivery not requeued", "reason", e.Reason, "error", err)
			r.done(ctx, m)
		default:
			log.WarnContext(ctx, "webhook redelivery not requeued", "reason", e.Reason, "error", err)
			_ = r.schedule(ctx, time.Now().Add(10*r.cfg.Poll), e) // Redis trouble: try again
		}
	}
	return n
}

// done removes a claimed due entry whose requeue is settled. If the
// removal fails, the entry comes back when its lease ends and its requeue
// finds the dead letter no longer open.
func (r *Redelivery) done(ctx context.Context, member string) {
	if err := r.cfg.Redis.ZRem(ctx, dueKey, member).Err(); err != nil {
		r.log.WarnContext(ctx, "cannot remove a done redelivery; it is looked at again once its lease ends", "error", err)
	}
}

// NotOpenError is returned by DeadLetters.Requeue for a job that is no
// open dead letter (an operator requeued or discarded it, or it is gone):
// there is nothing to redeliver.
type NotOpenError struct{ Err error }

func (e *NotOpenError) Error() string { return "not an open dead letter: " + e.Err.Error() }
func (e *NotOpenError) Unwrap() error { return e.Err }
