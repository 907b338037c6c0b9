// Package deadletter is the ledger of dead letters: every job that failed
// for good, with its exact payload, and what was done about it.
//
// asynq's archive is capped (10,000 jobs per queue, oldest dropped silently)
// and lives in Redis; it is only a cache. The ledger is the source of truth:
// an append-only JSON-lines file by default ([File]), or PostgreSQL
// (package postgres). Both implement [Ledger], and both pass the same
// conformance suite (package deadletter/ledgertest).
//
// # Records
//
// An [Entry] is one failure: job ID, type, queue, the exact payload (so the
// job can be rebuilt; mask it with [Entry.Masked] before showing it), the
// last error, attempts, when it failed and why ([WhyPermanent],
// [WhyExhausted], [WhyCrashed]), and its fate: [StateOpen] until an
// operator requeues ([StateRequeued]) or discards ([StateDiscarded]) it,
// with when, by whom and why.
//
// # The same failure twice
//
// A failure is identified by its job ID and its run: the value of the
// [RunHeader] task header, which every requeue sets afresh (a job enqueued
// by a client has none). Record is a no-op when the ledger already holds
// that failure: a record with the same job ID and run that is still open,
// or that was resolved at or after the failure. So the worker's error
// handler and the archive sweep may both report one archival, any number
// of times, in any order; the same job failing again after a requeue is a
// new record.
package deadletter

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// RunHeader is the task header that tells one run of a job ID from the
// next: a requeue sets it to a fresh value, so a failure after a requeue
// is a new dead letter, not the old one again.
const RunHeader = "escrowjobs-run"

// Why a job became a dead letter.
const (
	// WhyPermanent: the handler said retrying cannot help (asynq.SkipRetry).
	WhyPermanent = "permanent"
	// WhyExhausted: every attempt failed.
	WhyExhausted = "exhausted"
	// WhyCrashed: its worker died during the last attempt and asynq's
	// recoverer archived it.
	WhyCrashed = "crashed"
)

// States of a dead letter.
const (
	StateOpen      = "open"
	StateRequeued  = "requeued"
	StateDiscarded = "discarded"
)

// MaxPayloadBytes is the most of a payload the ledger keeps. It is far
// above the largest valid payload (handlers refuse more than 64 KiB); a
// larger one is garbage that was put in a queue, kept cut.
const MaxPayloadBytes = 256 << 10

// ErrNotFound is returned when the ledger holds no dead letter of the job.
var ErrNotFound = errors.New("dead letter not found")

// ErrNotOpen is returned when a requeue or discard finds the job's dead
// letter already resolved.
var ErrNotOpen = errors.New("dead letter is not open")

// ErrBadCursor is returned by List for a cursor it did not hand out.
var ErrBadCursor = errors.New("invalid cursor")

// Entry is one dead letter: one failure of one job and its fate.
type Entry struct {
	// ID is the job ID (several entries share it when a requeued job
	// failed again).
	ID    string `json:"id"`
	Type  string `json:"type"`
	Queue string `json:"queue"`
	// Run is the job's RunHeader value ("" for a job never requeued).
	Run string `json:"run,omitempty"`
	// State is open, requeued or discarded.
	State string `json:"state"`
	// Error is the last attempt's error (addresses masked).
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	FailedAt time.Time `json:"failedAt"`
	// Why is permanent, exhausted or crashed.
	Why string `json:"why"`
	// Payload is the job's exact payload. Show Masked().Payload instead.
	Payload json.RawMessage `json:"payload"`
	// PayloadInexact is set when Payload is not the job's exact payload:
	// records written before the ledger (addresses masked), and payloads
	// over MaxPayloadBytes (cut; no handler accepts them). Such a record
	// cannot rebuild its job.
	PayloadInexact bool `json:"payloadInexact,omitempty"`
	// Actor, Reason and ResolvedAt say who requeued or discarded it, why
	// and when.
	Actor      string     `json:"actor,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	ResolvedAt *time.Time `json:"resolvedAt,omitempty"`
	// Flow and Step name the flow and step whose job this is (package
	// flows; "" for a job of no flow).
	Flow string `json:"flow,omitempty"`
	Step string `json:"step,omitempty"`
	// Seq orders entries that failed at the same instant; the store sets it.
	Seq int64 `json:"-"`
}

// Masked returns e with e-mail addresses masked in its payload, error and
// reason: the form every API, CLI and log shows.
func (e Entry) Masked() Entry {
	if len(e.Payload) > 0 {
		e.Payload = payloads.MaskedJSON(e.Payload)
	}
	e.Error = payloads.MaskEmailsString(e.Error)
	e.Reason = payloads.MaskEmailsString(e.Reason)
	return e
}

// Resolution is what an operator did about a dead letter.
type Resolution struct {
	// Actor is who did it: "api", the UI's Basic-auth user, the CLI's
	// --actor (default the OS user).
	Actor  string
	Reason string
	At     time.Time
	// Run is the RunHeader value of the rerun a requeue started: open
	// entries of that run failed after the requeue and stay open. Empty
	// spares nothing.
	Run string
}

// Filter selects dead letters. Zero fields match everything.
type Filter struct {
	Type, Queue string
	// TransactionID and PartnerID match the payload's transactionId and
	// partnerId.
	TransactionID, PartnerID string
	// State is open, requeued or discarded.
	State string
	// Since and Until bound FailedAt: Since <= FailedAt < Until.
	Since, Until time.Time
}

// Validate names the first bad field of f.
func (f Filter) Validate() error {
	switch f.State {
	case "", StateOpen, StateRequeued, StateDiscarded:
	default:
		return fmt.Errorf("state %q: want open, requeued or discarded", f.State)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return errors.New("until must be after since")
	}
	return nil
}

// Match reports whether e passes f.
func (f Filter) Match(e Entry) bool {
	switch {
	case f.Type != "" && e.Type != f.Type,
		f.Queue != "" && e.Queue != f.Queue,
		f.State != "" && e.State != f.State,
		!f.Since.IsZero() && e.FailedAt.Before(f.Since),
		!f.Until.IsZero() && !e.FailedAt.Before(f.Until):
		return false
	}
	if f.TransactionID == "" && f.PartnerID == "" {
		return true
	}
	var p struct {
		TransactionID string `json:"transactionId"`
		PartnerID     string `json:"partnerId"`
	}
	_ = json.Unmarshal(e.Payload, &p)
	return (f.TransactionID == "" || p.TransactionID == f.TransactionID) &&
		(f.PartnerID == "" || p.PartnerID == f.PartnerID)
}

// Page is one page of List: entries most recent failure first, and the
// cursor of the next page ("" on the last).
type Page struct {
	Entries []Entry
	Next    string
}

// Ledger is a durable dead-letter ledger.
type Ledger interface {
	// Record stores e as an open dead letter, durably when it returns nil.
	// It reports false, and changes nothing, when the ledger already holds
	// this failure (see the package doc).
	Record(ctx context.Context, e Entry) (bool, error)
	// List returns up to limit entries matching f, most recent failure
	// first, starting after cursor ("" for the first page).
	List(ctx context.Context, f Filter, cursor string, limit int) (Page, error)
	// Get returns the job's most recent dead letter, or ErrNotFound.
	Get(ctx context.Context, id string) (Entry, error)
	// MarkRequeued resolves the job's open dead letters (except those of
	// run r.Run) as requeued. It returns how many it changed.
	MarkRequeued(ctx context.Context, id string, r Resolution) (int, error)
	// MarkDiscarded resolves the job's open dead letters as discarded.
	MarkDiscarded(ctx context.Context, id string, r Resolution) (int, error)
	// Purge deletes requeued and discarded entries resolved before
	// before; open ones are never purged. It returns how many it deleted.
	Purge(ctx context.Context, before time.Time) (int, error)
}

// Cursor is the position after an entry in List's order.
type Cursor struct {
	FailedAt time.Time
	Seq      int64
}

// EncodeCursor makes the opaque cursor that follows e.
func EncodeCursor(e Entry) string {
	raw := strconv.FormatInt(e.FailedAt.UnixNano(), 10) + "." + strconv.FormatInt(e.Seq, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// DecodeCursor reads a cursor of EncodeCursor; "" is the start.
func DecodeCursor(s string) (Cursor, bool, error) {
	if s == "" {
		return Cursor{}, false, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, false, ErrBadCursor
	}
	ns, seq, ok := strings.Cut(string(raw), ".")
	if !ok {
		return Cursor{}, false, ErrBadCursor
	}
	n, err1 := strconv.ParseInt(ns, 10, 64)
	q, err2 := strconv.ParseInt(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return Cursor{}, false, ErrBadCursor
	}
	return Cursor{FailedAt: time.Unix(0, n).UTC(), Seq: q}, true, nil
}

// After reports whether e comes after c in List's order (older, or as old
// with a smaller Seq).
func (c Cursor) After(e Entry) bool {
	if e.FailedAt.Equal(c.FailedAt) {
		return e.Seq < c.Seq
	}
	return e.FailedAt.Before(c.FailedAt)
}

// sameFailure reports whether a new report n is a failure old already
// holds: same job and run, and old is open or was resolved at or after n
// failed.
func sameFailure(old, n Entry) bool {
	if old.ID != n.ID || old.Run != n.Run {
		return false
	}
	return old.State == StateOpen || (old.ResolvedAt != nil && !old.ResolvedAt.Before(n.FailedAt))
}

// SameFailure is the rule of the package doc, for other stores.
func SameFailure(old, n Entry) bool { return sameFailure(old, n) }

// Normalize checks e before it is stored: it needs an ID and a failure
// time; it becomes open, its times UTC.
func Normalize(e Entry) (Entry, error) {
	if e.ID == "" {
		return e, errors.New("dead letter: empty job ID")
	}
	if e.FailedAt.IsZero() {
		return e, fmt.Errorf("dead letter %s: no failure time", e.ID)
	}
	e.FailedAt = e.FailedAt.UTC().Truncate(time.Microsecond) // what PostgreSQL keeps
	if len(e.Payload) > MaxPayloadBytes {
		e.Payload, e.PayloadInexact = e.Payload[:MaxPayloadBytes], true
	}
	e.State, e.Actor, e.Reason, e.ResolvedAt = StateOpen, "", "", nil
	return e, nil
}
