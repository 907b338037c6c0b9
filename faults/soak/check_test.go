package soak_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/faults/soak"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/postgres"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/jackc/pgx/v5/pgxpool"
)

// row is an escrow as the database holds it at the end: the truth about
// which transitions committed.
type row struct {
	status, disputeID, resolution string
	sellerAmount                  int64
}

// expected is what the committed transitions of one escrow must have
// caused, each exactly once.
type expected struct {
	captures, cancels int               // at the Stripe fake, for the escrow's PaymentIntent
	captureAmount     int64             // amount_to_capture of a split (0: the full amount)
	mails             map[string]string // Message-ID → recipient
	hooks             []string          // webhook-ids at the escrow's partner
	audits            []string          // audit event IDs
	deadLetter        bool              // one open dead letter: its capture, failed for good
	flows             map[string]string // flow ID → final state
	transitions       int
}

// evID is examples/escrow's event ID of an escrow's action (jobs.go).
func evID(escrowID, action string) string {
	sum := sha256.Sum256([]byte(escrowID + "/" + action))
	return "ev-" + hex.EncodeToString(sum[:20])
}

func mustID(t *tasks.Task, err error) string {
	if err != nil {
		panic(err)
	}
	return t.ID
}

// expect derives what e must have caused from its row.
func expect(e *escrowCase, r row) expected {
	x := expected{mails: map[string]string{}, flows: map[string]string{}}
	mail := func(jobID, to string) { x.mails[email.MessageID(jobID, mailDomain)] = to }
	hook := func(id string) {
		if e.partner != "" {
			x.hooks = append(x.hooks, id)
		}
	}
	// fund
	x.transitions++
	x.flows[flows.ID("fund", e.id)] = flows.StateCompleted
	mail(mustID(tasks.NewSendPaymentConfirmedEmailTask(payloads.SendPaymentConfirmedEmail{TransactionID: e.id, PaymentIntentID: e.pi, RecipientEmail: e.buyer, Amount: e.amount, Currency: e.currency})), e.buyer)
	hook(evID(e.id, "funded"))
	x.audits = append(x.audits, evID(e.id, "created"))

	switch {
	case strings.HasPrefix(r.status, "releas"): // releasing, released, release_failed
		x.transitions++
		x.audits = append(x.audits, evID(e.id, "release_requested"))
		if e.expired {
			x.deadLetter = true
			x.audits = append(x.audits, evID(e.id, "release_failed"))
			x.flows[flows.ID("release", e.id)] = flows.StateFailed
			break
		}
		x.flows[flows.ID("release", e.id)] = flows.StateCompleted
		x.captures = 1
		mail(mustID(tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: e.id, RecipientEmail: e.seller, Amount: e.amount, Currency: e.currency})), e.seller)
		hook(evID(e.id, "released"))
	case strings.HasPrefix(r.status, "refund"):
		x.transitions++
		x.audits = append(x.audits, evID(e.id, "refund_requested"))
		x.flows[flows.ID("refund", e.id)] = flows.StateCompleted
		if !e.expired {
			x.cancels = 1
		}
		mail(mustID(tasks.NewSendRefundEmailTask(payloads.SendRefundEmail{TransactionID: e.id, RecipientEmail: e.buyer, Amount: e.amount, Currency: e.currency})), e.buyer)
		hook(evID(e.id, "refunded"))
	}
	if r.disputeID != "" {
		x.transitions++
		x.flows[flows.ID("dispute", e.id)] = flows.StateCompleted
		for _, to := range []string{e.buyer, e.seller} {
			mail(mustID(tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{TransactionID: e.id, DisputeID: r.disputeID, RecipientEmail: to, Reason: "x"})), to)
		}
		hook(evID(e.id, "disputed"))
		x.audits = append(x.audits, evID(e.id, "disputed"))
	}
	if r.resolution != "" {
		x.transitions++
		x.audits = append(x.audits, evID(e.id, "resolve_requested"))
		fid := flows.ID("resolve", e.id)
		failed := e.expired && r.resolution != payloads.ResolutionRefundToBuyer
		switch {
		case failed:
			x.deadLetter = true
			x.audits = append(x.audits, evID(e.id, "resolve_failed"))
			x.flows[fid] = flows.StateFailed
		case r.resolution == payloads.ResolutionRefundToBuyer:
			x.flows[fid] = flows.StateCompleted
			if !e.expired {
				x.cancels = 1
			}
		default:
			x.flows[fid] = flows.StateCompleted
			x.captures = 1
			if r.resolution == payloads.ResolutionSplit {
				x.captureAmount = r.sellerAmount
			}
		}
		if !failed {
			for _, to := range []string{e.buyer, e.seller} {
				mail(mustID(tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{TransactionID: e.id, DisputeID: r.disputeID, RecipientEmail: to, Reason: "x"},
					tasks.DedupeKey("dispute-"+r.disputeID+"-resolved-"+payloads.RecipientHash(to)))), to)
			}
			hook("dispute-" + r.disputeID + "-resolved")
		}
	}
	return x
}

// readRows reads every escrow row.
func readRows(ctx context.Context, db *pgxpool.Pool) (map[string]row, error) {
	rows, err := db.Query(ctx, `SELECT id, status, dispute_id, resolution, seller_amount FROM escrows`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.status, &r.disputeID, &r.resolution, &r.sellerAmount); err != nil {
			return nil, err
		}
		out[id] = r
	}
	return out, rows.Err()
}

// ledgerEntries reads the whole dead-letter ledger.
func ledgerEntries(ctx context.Context, l *postgres.DeadLetters) ([]deadletter.Entry, error) {
	var all []deadletter.Entry
	cursor := ""
	for {
		page, err := l.List(ctx, deadletter.Filter{}, cursor, 500)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Entries...)
		if page.Next == "" {
			return all, nil
		}
		cursor = page.Next
	}
}

// mailSummary is one message of mailpit's list.
type mailSummary struct {
	MessageID string
	To        []struct{ Address string }
}

// allMail pages through mailpit's messages.
func (s *system) allMail() ([]mailSummary, error) {
	var out []mailSummary
	for start := 0; ; start += 500 {
		resp, err := s.http.Get(fmt.Sprintf("%s/messages?start=%d&limit=500", s.mail.APIURL(), start))
		if err != nil {
			return nil, err
		}
		var page struct {
			Messages []mailSummary `json:"messages"`
			Total    int           `json:"total"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, page.Messages...)
		if len(page.Messages) < 500 {
			return out, nil
		}
	}
}

// drained reports what is still moving: rows in the outbox, running
// flows, jobs not at rest, leases, open dead letters beyond the expected
// ones, dead letters still in the spill. Empty when the system has settled.
func (s *system) drained(ctx context.Context, db *pgxpool.Pool, ledger *postgres.DeadLetters, spill *deadletter.File, wantOpen int) []string {
	var left []string
	var n int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM "+outbox.Table).Scan(&n); err != nil {
		return []string{"outbox: " + err.Error()}
	} else if n > 0 {
		left = append(left, fmt.Sprintf("outbox rows %d", n))
	}
	page, err := flows.NewStore(s.rc, s.insp).List(ctx, flows.Filter{State: flows.StateRunning}, "", flows.MaxListLimit)
	if err != nil {
		return append(left, "flows: "+err.Error())
	}
	if len(page.Items) > 0 {
		var ids []string
		for _, it := range page.Items[:min(5, len(page.Items))] {
			ids = append(ids, it.ID)
		}
		left = append(left, fmt.Sprintf("running flows %d (%v…)", len(page.Items), ids))
	}
	qs, err := s.insp.Stats(ctx)
	if err != nil {
		return append(left, "stats: "+err.Error())
	}
	for _, q := range qs {
		if busy := q.Pending + q.Active + q.Scheduled + q.Retry; busy > 0 {
			left = append(left, fmt.Sprintf("queue %s: pending %d active %d scheduled %d retry %d", q.Queue, q.Pending, q.Active, q.Scheduled, q.Retry))
		}
	}
	entries, err := ledgerEntries(ctx, ledger)
	if err != nil {
		return append(left, "ledger: "+err.Error())
	}
	open := 0
	for _, e := range entries {
		if e.State == deadletter.StateOpen {
			open++
		}
	}
	if open > wantOpen {
		left = append(left, fmt.Sprintf("open dead letters %d, want %d", open, wantOpen))
	}
	// A record spilled while PostgreSQL was down is not in the ledger the
	// checks read until a worker's flush moves it (deadletter.Fallback).
	if p, err := spill.List(ctx, deadletter.Filter{State: deadletter.StateOpen}, "", 100); err != nil {
		left = append(left, "spill: "+err.Error())
	} else if len(p.Entries) > 0 {
		left = append(left, fmt.Sprintf("dead letters spilled, not yet in the ledger: %d", len(p.Entries)))
	}
	return left
}

// spillPath is the workers' shared spill file of dead letters the
// database did not take in time (DEAD_LETTER_PATH).
func (s *system) spillPath() string { return filepath.Join(s.dir, "dead-letters.jsonl") }

// keysWithoutTTL counts the keys without an expiry on the master, by
// pattern. Task hashes of archived and completed jobs are left out: asynq
// caps and trims its archive, and its janitor deletes a completed job when
// its retention (1 h) ends.
func (s *system) keysWithoutTTL(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	var cursor uint64
	for {
		keys, next, err := s.rc.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return nil, err
		}
		pipe := s.rc.Pipeline()
		ttls := make([]interface{ Val() time.Duration }, len(keys))
		for i, k := range keys {
			ttls[i] = pipe.TTL(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
		var tasks []string // asynq task hashes without an expiry: archived or completed ones are trimmed by asynq
		for i, k := range keys {
			if ttls[i].Val() != -1 {
				continue // has an expiry (or is gone)
			}
			if strings.HasPrefix(k, "asynq:{") && strings.Contains(k, "}:t:") {
				tasks = append(tasks, k)
				continue
			}
			out[soak.KeyPattern(k)]++
		}
		pipe = s.rc.Pipeline()
		states := make([]interface{ Val() string }, len(tasks))
		for i, k := range tasks {
			states[i] = pipe.HGet(ctx, k, "state")
		}
		if len(tasks) > 0 {
			_, _ = pipe.Exec(ctx) // a key gone in between answers nil
		}
		for i, k := range tasks {
			if st := states[i].Val(); st != "" && st != "archived" && st != "completed" {
				out[soak.KeyPattern(k)]++
			}
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// monitorHealthy checks that the monitor still answers.
func (s *system) monitorHealthy() error {
	resp, err := s.http.Get(s.monitorURL + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("monitor /healthz: %d", resp.StatusCode)
	}
	return nil
}

// sortedKeys is m's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
