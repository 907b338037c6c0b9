// Package ledgertest is the conformance suite every deadletter.Ledger
// passes: the file ledger (package deadletter) and PostgreSQL (package
// postgres) run the same tests.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
)

// base is the failure time of the first entry the suite records.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Run runs the suite; open returns a fresh, empty ledger for one test.
func Run(t *testing.T, open func(t *testing.T) deadletter.Ledger) {
	tests := []struct {
		name string
		f    func(*testing.T, deadletter.Ledger)
	}{
		{"PagesNewestFirstExactlyOnce", pages},
		{"Filters", filters},
		{"SameFailureTwiceIsOneRecord", sameFailure},
		{"ConcurrentRecordsOfOneFailure", concurrent},
		{"KeepsTheExactPayload", exactPayload},
		{"Resolutions", resolutions},
		{"HistoryListsEveryRun", history},
		{"PurgeKeepsOpenDeadLetters", purge},
		{"RefusesAForeignCursor", badCursor},
		{"KeepsTheFlowAndStep", flowAndStep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.f(t, open(t)) })
	}
}

func entry(i int, typ string) deadletter.Entry {
	return deadletter.Entry{
		ID: fmt.Sprintf("%s:job-%03d", typ, i), Type: typ, Queue: "default",
		Payload: []byte(fmt.Sprintf(`{"transactionId":"tx-%d","partnerId":"p-%d"}`, i%5, i%3)),
		Error:   "boom", Attempts: 4, Why: deadletter.WhyExhausted,
		FailedAt: base.Add(time.Duration(i) * time.Second),
	}
}

func record(t *testing.T, l deadletter.Ledger, e deadletter.Entry) {
	t.Helper()
	if ok, err := l.Record(context.Background(), e); err != nil || !ok {
		t.Fatalf("Record(%s): got %v, %v; want true, nil", e.ID, ok, err)
	}
}

func ids(es []deadletter.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// all pages through l with f and limit, and returns every ID in order.
func all(t *testing.T, l deadletter.Ledger, f deadletter.Filter, limit int) []string {
	t.Helper()
	var out []string
	cursor := ""
	for range 10000 {
		p, err := l.List(context.Background(), f, cursor, limit)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(p.Entries) > limit {
			t.Fatalf("got %d entries, want at most %d", len(p.Entries), limit)
		}
		out = append(out, ids(p.Entries)...)
		if p.Next == "" {
			return out
		}
		cursor = p.Next
	}
	t.Fatal("paging does not end")
	return nil
}

// 150 dead letters: the first page is the 10 most recent, in order, and
// paging reaches all 150 exactly once, newest first.
func pages(t *testing.T, l deadletter.Ledger) {
	// Record out of order, two at the same instant.
	order := make([]int, 150)
	for i := range order {
		order[i] = (i*37 + 11) % 150
	}
	for _, i := range order {
		e := entry(i+1, "send_release_email")
		if i+1 == 100 {
			e.FailedAt = base.Add(99 * time.Second) // as old as job-099
		}
		record(t, l, e)
	}
	var want []string
	for i := 150; i >= 1; i-- {
		want = append(want, fmt.Sprintf("send_release_email:job-%03d", i))
	}
	p, err := l.List(context.Background(), deadletter.Filter{}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(p.Entries); !slices.Equal(got, want[:10]) || p.Next == "" {
		t.Errorf("first page: got %v (next %q), want %v and a next cursor", got, p.Next, want[:10])
	}
	for _, limit := range []int{10, 7, 150, 1000} {
		got := all(t, l, deadletter.Filter{}, limit)
		// job-099 and job-100 failed at the same instant: either order,
		// but each once.
		if len(got) != 150 {
			t.Fatalf("limit %d: got %d entries, want 150", limit, len(got))
		}
		normal := slices.Clone(got)
		if i := slices.Index(normal, "send_release_email:job-099"); i > 0 && normal[i-1] == "send_release_email:job-101" {
			normal[i], normal[i+1] = normal[i+1], normal[i]
		}
		if !slices.Equal(normal, want) {
			t.Errorf("limit %d: got %v, want %v", limit, got, want)
		}
	}
}

func filters(t *testing.T, l deadletter.Ledger) {
	ctx := context.Background()
	for i := 1; i <= 30; i++ {
		typ := []string{"send_release_email", "webhook_escrow_status_changed", "audit_log_created"}[i%3]
		e := entry(i, typ)
		if typ == "audit_log_created" {
			e.Queue = "low"
		}
		record(t, l, e)
	}
	if _, err := l.MarkDiscarded(ctx, "webhook_escrow_status_changed:job-010", deadletter.Resolution{Actor: "op", Reason: "r", At: base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	want := func(pred func(i int, typ string) bool) []string {
		var out []string
		for i := 30; i >= 1; i-- {
			typ := []string{"send_release_email", "webhook_escrow_status_changed", "audit_log_created"}[i%3]
			if pred(i, typ) {
				out = append(out, fmt.Sprintf("%s:job-%03d", typ, i))
			}
		}
		return out
	}
	tests := []struct {
		name string
		f    deadletter.Filter
		want []string
	}{
		{"type", deadletter.Filter{Type: "send_release_email"}, want(func(i int, typ string) bool { return i%3 == 0 })},
		{"queue", deadletter.Filter{Queue: "low"}, want(func(i int, typ string) bool { return i%3 == 2 })},
		{"transactionId", deadletter.Filter{TransactionID: "tx-2"}, want(func(i int, _ string) bool { return i%5 == 2 })},
		{"partnerId", deadletter.Filter{PartnerID: "p-1"}, want(func(i int, _ string) bool { return i%3 == 1 })},
		{"state discarded", deadletter.Filter{State: deadletter.StateDiscarded}, []string{"webhook_escrow_status_changed:job-010"}},
		{"state open", deadletter.Filter{State: deadletter.StateOpen}, want(func(i int, _ string) bool { return i != 10 })},
		{"since", deadletter.Filter{Since: base.Add(25 * time.Second)}, want(func(i int, _ string) bool { return i >= 25 })},
		{"since until", deadletter.Filter{Since: base.Add(5 * time.Second), Until: base.Add(9 * time.Second)}, want(func(i int, _ string) bool { return i >= 5 && i < 9 })},
		{"type and transactionId", deadletter.Filter{Type: "audit_log_created", TransactionID: "tx-0"}, want(func(i int, _ string) bool { return i%3 == 2 && i%5 == 0 })},
		{"nothing", deadletter.Filter{Type: "stripe_refund_payment"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := all(t, l, tt.f, 4); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func sameFailure(t *testing.T, l deadletter.Ledger) {
	ctx := context.Background()
	id := "send_release_email:" + strings.Repeat("x", 44) // 64 characters
	first := deadletter.Entry{ID: id, Type: "send_release_email", Queue: "default", Payload: []byte(`{}`), Why: deadletter.WhyPermanent, FailedAt: base}
	record(t, l, first)
	// The sweep reports the same archival later, with asynq's time.
	again := first
	again.FailedAt = base.Add(time.Second)
	again.Why = deadletter.WhyCrashed
	if ok, err := l.Record(ctx, again); ok || err != nil {
		t.Errorf("second Record of the same failure: got %v, %v; want false, nil", ok, err)
	}
	// Requeued as run r1; a stale report of the old failure stays a no-op.
	if n, err := l.MarkRequeued(ctx, id, deadletter.Resolution{Actor: "api", At: base.Add(time.Minute), Run: "r1"}); n != 1 || err != nil {
		t.Fatalf("MarkRequeued: got %d, %v; want 1, nil", n, err)
	}
	if ok, err := l.Record(ctx, again); ok || err != nil {
		t.Errorf("Record of the requeued failure: got %v, %v; want false, nil", ok, err)
	}
	// The rerun fails: a new failure.
	rerun := first
	rerun.Run, rerun.FailedAt = "r1", base.Add(2*time.Minute)
	record(t, l, rerun)
	if ok, _ := l.Record(ctx, rerun); ok {
		t.Error("the rerun's failure was recorded twice")
	}
	// Discarded, then the same ID enqueued afresh by a client (no run)
	// fails an hour later: a new failure too.
	if _, err := l.MarkDiscarded(ctx, id, deadletter.Resolution{Actor: "op", Reason: "customer refunded by hand", At: base.Add(3 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	fresh := first
	fresh.FailedAt = base.Add(time.Hour)
	record(t, l, fresh)
	got := all(t, l, deadletter.Filter{}, 10)
	if want := []string{id, id, id}; !slices.Equal(got, want) {
		t.Errorf("got %v, want three failures of %s", got, id)
	}
	if e, err := l.Get(ctx, id); err != nil || !e.FailedAt.Equal(fresh.FailedAt) || e.State != deadletter.StateOpen {
		t.Errorf("Get: got %+v, %v; want the open failure of %v", e, err, fresh.FailedAt)
	}
}

func concurrent(t *testing.T, l deadletter.Ledger) {
	e := entry(1, "audit_log_created")
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := l.Record(context.Background(), e)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got := all(t, l, deadletter.Filter{}, 10); n != 1 || len(got) != 1 {
		t.Errorf("got %d recorded, %v listed; want 1 and one entry", n, got)
	}
}

func exactPayload(t *testing.T, l deadletter.Ledger) {
	ctx := context.Background()
	payloads := map[string]string{
		"send_release_email:a": `{"transactionId":"tx-1", "recipientEmail":"jane@bücher.de","amount":100,"currency":"EUR"}`,
		"send_release_email:b": "{\n  \"recipientEmail\": \"\\\"jane doe\\\"@example.com\",\n  \"transactionId\": \"tx-2\"\n}",
		"send_release_email:c": `not json at all`,
	}
	i := 0
	for id, p := range payloads {
		i++
		record(t, l, deadletter.Entry{ID: id, Type: "send_release_email", Queue: "default", Payload: []byte(p), Why: deadletter.WhyPermanent,
			Error: `smtp: 550 "jane doe"@example.com unknown`, FailedAt: base.Add(time.Duration(i) * time.Second)})
	}
	for id, want := range payloads {
		e, err := l.Get(ctx, id)
		if err != nil || string(e.Payload) != want {
			t.Errorf("Get(%s): got payload %q (%v), want exactly %q", id, e.Payload, err, want)
		}
		if m := e.Masked(); strings.Contains(string(m.Payload), "ane") || strings.Contains(m.Error, "ane") {
			t.Errorf("Masked(%s): got %s / %s, want the address masked", id, m.Payload, m.Error)
		}
	}
	huge := deadletter.Entry{ID: "send_release_email:huge", Type: "send_release_email", Queue: "default", Why: deadletter.WhyPermanent,
		Payload: []byte(`"` + strings.Repeat("x", deadletter.MaxPayloadBytes+10) + `"`), FailedAt: base}
	record(t, l, huge)
	if e, err := l.Get(ctx, huge.ID); err != nil || len(e.Payload) != deadletter.MaxPayloadBytes || !e.PayloadInexact {
		t.Errorf("oversized payload: got %d bytes, inexact %v (%v); want cut at %d and marked inexact", len(e.Payload), e.PayloadInexact, err, deadletter.MaxPayloadBytes)
	}
	for id := range payloads {
		if e, _ := l.Get(ctx, id); e.PayloadInexact {
			t.Errorf("%s: marked inexact", id)
		}
	}
	if got := all(t, l, deadletter.Filter{TransactionID: "tx-2"}, 10); !slices.Equal(got, []string{"send_release_email:b"}) {
		t.Errorf("filter on a pretty-printed payload: got %v, want [send_release_email:b]", got)
	}
}

func resolutions(t *testing.T, l deadletter.Ledger) {
	ctx := context.Background()
	record(t, l, entry(1, "stripe_capture_payment"))
	id := entry(1, "stripe_capture_payment").ID
	at := base.Add(time.Hour)
	if n, err := l.MarkRequeued(ctx, id, deadletter.Resolution{Actor: "alice", Reason: "Stripe is back", At: at, Run: "r1"}); n != 1 || err != nil {
		t.Fatalf("MarkRequeued: got %d, %v; want 1, nil", n, err)
	}
	e, err := l.Get(ctx, id)
	if err != nil || e.State != deadletter.StateRequeued || e.Actor != "alice" || e.Reason != "Stripe is back" || e.ResolvedAt == nil || !e.ResolvedAt.Equal(at) {
		t.Errorf("got %+v, %v; want requeued by alice, 'Stripe is back', at %v", e, err, at)
	}
	if _, err := l.MarkRequeued(ctx, id, deadletter.Resolution{Actor: "bob", At: at, Run: "r2"}); !errors.Is(err, deadletter.ErrNotOpen) {
		t.Errorf("second MarkRequeued: got %v, want ErrNotOpen", err)
	}
	if _, err := l.MarkDiscarded(ctx, "nope", deadletter.Resolution{Actor: "bob", At: at}); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("MarkDiscarded of an unknown job: got %v, want ErrNotFound", err)
	}
	if _, err := l.Get(ctx, "nope"); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("Get of an unknown job: got %v, want ErrNotFound", err)
	}
	// A failure of the rerun (run r1) is not resolved by the requeue that
	// started it.
	rerun := entry(1, "stripe_capture_payment")
	rerun.Run, rerun.FailedAt = "r1", at.Add(time.Millisecond)
	record(t, l, rerun)
	if n, err := l.MarkRequeued(ctx, id, deadletter.Resolution{Actor: "alice", At: at, Run: "r1"}); !errors.Is(err, deadletter.ErrNotOpen) || n != 0 {
		t.Errorf("MarkRequeued sparing run r1: got %d, %v; want 0, ErrNotOpen", n, err)
	}
}

// history: every failure of one job ID, each with its own fate, newest
// first.
func history(t *testing.T, l deadletter.Ledger) {
	ctx := context.Background()
	h, ok := l.(deadletter.Historian)
	if !ok {
		t.Fatalf("%T has no History (deadletter.Historian)", l)
	}
	first := entry(1, "stripe_capture_payment")
	record(t, l, first)
	record(t, l, entry(2, "stripe_capture_payment")) // another job
	at := base.Add(time.Hour)
	if _, err := l.MarkRequeued(ctx, first.ID, deadletter.Resolution{Actor: "alice", Reason: "Stripe is back", At: at, Run: "r1"}); err != nil {
		t.Fatal(err)
	}
	rerun := first
	rerun.Run, rerun.FailedAt, rerun.Error = "r1", at.Add(time.Minute), "boom again"
	record(t, l, rerun)
	if _, err := l.MarkDiscarded(ctx, first.ID, deadletter.Resolution{Actor: "bob", Reason: "refunded by hand", At: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err := h.History(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d entries %v, want 2 (the failure and the failure of its rerun)", len(got), ids(got))
	}
	if got[0].Run != "r1" || got[0].State != deadletter.StateDiscarded || got[0].Actor != "bob" || got[0].Error != "boom again" {
		t.Errorf("newest: got %+v, want run r1 discarded by bob", got[0])
	}
	if got[1].Run != "" || got[1].State != deadletter.StateRequeued || got[1].Actor != "alice" || got[1].Reason != "Stripe is back" {
		t.Errorf("oldest: got %+v, want the first run requeued by alice", got[1])
	}
	if _, err := h.History(ctx, "nope"); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("History of an unknown job: got %v, want ErrNotFound", err)
	}
}

func purge(t *testing.T, l deadletter.Ledger) {
	ctx := context.Background()
	for i := 1; i <= 6; i++ {
		record(t, l, entry(i, "audit_log_created"))
	}
	res := func(i int, discard bool, at time.Time) {
		id := entry(i, "audit_log_created").ID
		var err error
		if discard {
			_, err = l.MarkDiscarded(ctx, id, deadletter.Resolution{Actor: "op", Reason: "dup", At: at})
		} else {
			_, err = l.MarkRequeued(ctx, id, deadletter.Resolution{Actor: "op", At: at, Run: "r"})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	cutoff := base.Add(90 * 24 * time.Hour)
	res(1, true, cutoff.Add(-time.Hour))  // purged
	res(2, false, cutoff.Add(-time.Hour)) // purged
	res(3, true, cutoff.Add(time.Hour))   // too recent
	// 4, 5, 6 stay open, however old.
	n, err := l.Purge(ctx, cutoff)
	if err != nil || n != 2 {
		t.Errorf("Purge: got %d, %v; want 2, nil", n, err)
	}
	want := []string{entry(6, "audit_log_created").ID, entry(5, "audit_log_created").ID, entry(4, "audit_log_created").ID, entry(3, "audit_log_created").ID}
	if got := all(t, l, deadletter.Filter{}, 10); !slices.Equal(got, want) {
		t.Errorf("after Purge: got %v, want %v", got, want)
	}
	if n, err := l.Purge(ctx, cutoff.Add(1000*time.Hour)); err != nil || n != 1 {
		t.Errorf("Purge far ahead: got %d, %v; want 1 (the discarded one), open ones never", n, err)
	}
	// Records and resolutions still work after a purge.
	record(t, l, entry(7, "audit_log_created"))
	res(7, true, cutoff)
}

func badCursor(t *testing.T, l deadletter.Ledger) {
	for _, c := range []string{"!!!", "bm90IGEgY3Vyc29y"} {
		if _, err := l.List(context.Background(), deadletter.Filter{}, c, 10); !errors.Is(err, deadletter.ErrBadCursor) {
			t.Errorf("List(cursor %q): got %v, want ErrBadCursor", c, err)
		}
	}
}

// flowAndStep: a dead letter of a flow step keeps its flow and step, in
// Get and List; one of no flow has none.
func flowAndStep(t *testing.T, l deadletter.Ledger) {
	ctx := context.Background()
	e := entry(1, "stripe_capture_payment")
	e.Flow, e.Step = "release:esc-123", "capture"
	record(t, l, e)
	record(t, l, entry(2, "audit_log_created"))
	got, err := l.Get(ctx, e.ID)
	if err != nil || got.Flow != e.Flow || got.Step != e.Step {
		t.Errorf("Get: got flow %q step %q (%v), want %q %q", got.Flow, got.Step, err, e.Flow, e.Step)
	}
	p, err := l.List(ctx, deadletter.Filter{}, "", 10)
	if err != nil || len(p.Entries) != 2 {
		t.Fatalf("List: got %d entries, %v", len(p.Entries), err)
	}
	for _, x := range p.Entries {
		want := ""
		if x.ID == e.ID {
			want = e.Flow
		}
		if x.Flow != want {
			t.Errorf("List %s: got flow %q, want %q", x.ID, x.Flow, want)
		}
	}
}
