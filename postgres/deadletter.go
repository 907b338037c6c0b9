package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/jackc/pgx/v5"
)

// DeadLetters is a deadletter.Ledger in the dead_letters table: one row
// per failure, the exact payload in payload_raw (bytea) and as jsonb in
// payload (for the transactionId and partnerId filters), the fate in
// state, actor, reason and resolved_at. A unique index allows one open row
// per job ID and run, so recording a failure twice is a no-op even from
// several processes at once.
type DeadLetters struct {
	db *DB
}

// DeadLetters returns the dead-letter ledger of db. Migrate must have run.
func (db *DB) DeadLetters() *DeadLetters { return &DeadLetters{db: db} }

// String names the ledger for logs and the console: "PostgreSQL database
// <name> on <host>:<port>" (never a user or password).
func (l *DeadLetters) String() string {
	cc := l.db.pool.Config().ConnConfig
	return fmt.Sprintf("PostgreSQL database %s on %s:%d", cc.Database, cc.Host, cc.Port)
}

// Record inserts e as an open row unless the table holds this failure (an
// open row of the same job and run, or one resolved at or after
// e.FailedAt). A payload that is not JSON, or that jsonb cannot hold (a
// \u0000 escape), is kept exactly in payload_raw and as a JSON string in
// payload; NUL bytes and invalid UTF-8 in the text columns become U+FFFD,
// so that no dead letter is lost to its own bad bytes.
func (l *DeadLetters) Record(ctx context.Context, e deadletter.Entry) (bool, error) {
	e, err := deadletter.Normalize(e)
	if err != nil {
		return false, err
	}
	tag, err := l.db.pool.Exec(ctx, `
		INSERT INTO dead_letters (job_id, type, queue, payload, payload_raw, last_error, attempts, permanent, archived_at, run, why, state, payload_inexact, flow, step)
		SELECT $1, $2, $3, $4::text::jsonb, $5, $6, $7, $8, $9, $10, $11, 'open', $12, $13, $14
		WHERE NOT EXISTS (
			SELECT 1 FROM dead_letters
			WHERE job_id = $1 AND run = $10 AND (state = 'open' OR resolved_at >= $9))
		ON CONFLICT (job_id, run) WHERE state = 'open' DO NOTHING`,
		clean(e.ID), clean(e.Type), clean(e.Queue), jsonbText(e.Payload), []byte(e.Payload),
		clean(e.Error), e.Attempts, e.Why == deadletter.WhyPermanent, e.FailedAt, clean(e.Run), clean(e.Why), e.PayloadInexact, clean(e.Flow), clean(e.Step))
	if err != nil {
		return false, classify(err, "postgres: record dead letter %s", e.ID)
	}
	return tag.RowsAffected() == 1, nil
}

const entryColumns = `id, job_id, type, queue, run, state, last_error, attempts, archived_at, why,
	COALESCE(payload_raw, convert_to(payload::text, 'UTF8')), payload_inexact OR (payload_raw IS NULL AND payload IS NOT NULL), actor, reason, resolved_at, flow, step`

func scanEntry(row pgx.Row) (deadletter.Entry, error) {
	var (
		e        deadletter.Entry
		payload  []byte
		resolved *time.Time
	)
	if err := row.Scan(&e.Seq, &e.ID, &e.Type, &e.Queue, &e.Run, &e.State, &e.Error, &e.Attempts, &e.FailedAt, &e.Why,
		&payload, &e.PayloadInexact, &e.Actor, &e.Reason, &resolved, &e.Flow, &e.Step); err != nil {
		return e, err
	}
	if len(payload) > 0 {
		e.Payload = json.RawMessage(payload)
	}
	e.FailedAt = e.FailedAt.UTC()
	if resolved != nil {
		r := resolved.UTC()
		e.ResolvedAt = &r
	}
	return e, nil
}

// List returns a page of rows matching f, most recent failure first.
func (l *DeadLetters) List(ctx context.Context, f deadletter.Filter, cursor string, limit int) (deadletter.Page, error) {
	c, has, err := deadletter.DecodeCursor(cursor)
	if err != nil {
		return deadletter.Page{}, err
	}
	page := deadletter.Page{Entries: []deadletter.Entry{}}
	if limit <= 0 {
		return page, nil
	}
	q, args := listQuery(f, c, has, limit)
	rows, err := l.db.pool.Query(ctx, q, args...)
	if err != nil {
		return page, fmt.Errorf("postgres: list dead letters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return page, fmt.Errorf("postgres: list dead letters: %w", err)
		}
		page.Entries = append(page.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("postgres: list dead letters: %w", err)
	}
	if len(page.Entries) > limit {
		page.Entries = page.Entries[:limit]
		page.Next = deadletter.EncodeCursor(page.Entries[limit-1])
	}
	return page, nil
}

// listQuery is List's query: the rows matching f after cursor c (when
// has), most recent failure first, limit+1 of them. Its payload filters
// are exactly the expressions migrate.go indexes.
func listQuery(f deadletter.Filter, c deadletter.Cursor, has bool, limit int) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.Queue != "" {
		add("queue = ?", f.Queue)
	}
	if f.State != "" {
		add("state = ?", f.State)
	}
	if f.TransactionID != "" {
		add("payload->>'transactionId' = ?", f.TransactionID)
	}
	if f.PartnerID != "" {
		add("payload->>'partnerId' = ?", f.PartnerID)
	}
	if !f.Since.IsZero() {
		add("archived_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		add("archived_at < ?", f.Until)
	}
	if has {
		args = append(args, c.FailedAt, c.Seq)
		where = append(where, fmt.Sprintf("(archived_at, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	q := "SELECT " + entryColumns + " FROM dead_letters"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	q += fmt.Sprintf(" ORDER BY archived_at DESC, id DESC LIMIT $%d", len(args))
	return q, args
}

// Get returns the job's most recent dead letter.
func (l *DeadLetters) Get(ctx context.Context, id string) (deadletter.Entry, error) {
	e, err := scanEntry(l.db.pool.QueryRow(ctx, "SELECT "+entryColumns+
		" FROM dead_letters WHERE job_id = $1 ORDER BY archived_at DESC, id DESC LIMIT 1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("job %s: %w", id, deadletter.ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("postgres: dead letter %s: %w", id, err)
	}
	return e, nil
}

// History returns every row of the job, one per failed run, most recent
// failure first, or deadletter.ErrNotFound.
func (l *DeadLetters) History(ctx context.Context, id string) ([]deadletter.Entry, error) {
	rows, err := l.db.pool.Query(ctx, "SELECT "+entryColumns+
		" FROM dead_letters WHERE job_id = $1 ORDER BY archived_at DESC, id DESC", id)
	if err != nil {
		return nil, fmt.Errorf("postgres: history of dead letter %s: %w", id, err)
	}
	defer rows.Close()
	var out []deadletter.Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: history of dead letter %s: %w", id, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: history of dead letter %s: %w", id, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("job %s: %w", id, deadletter.ErrNotFound)
	}
	return out, nil
}

// MarkRequeued resolves the job's open rows (but those of run r.Run) as
// requeued.
func (l *DeadLetters) MarkRequeued(ctx context.Context, id string, r deadletter.Resolution) (int, error) {
	return l.resolve(ctx, id, deadletter.StateRequeued, r, true)
}

// MarkDiscarded resolves the job's open rows as discarded.
func (l *DeadLetters) MarkDiscarded(ctx context.Context, id string, r deadletter.Resolution) (int, error) {
	return l.resolve(ctx, id, deadletter.StateDiscarded, r, false)
}

func (l *DeadLetters) resolve(ctx context.Context, id, state string, r deadletter.Resolution, spareRun bool) (int, error) {
	tag, err := l.db.pool.Exec(ctx, `
		UPDATE dead_letters SET state = $2, actor = $3, reason = $4, resolved_at = $5
		WHERE job_id = $1 AND state = 'open' AND (NOT $6 OR $7 = '' OR run <> $7)`,
		id, state, clean(r.Actor), clean(r.Reason), r.At.UTC().Truncate(time.Microsecond), spareRun, r.Run)
	if err != nil {
		return 0, classify(err, "postgres: %s dead letter %s", state, id)
	}
	if n := int(tag.RowsAffected()); n > 0 {
		return n, nil
	}
	if _, err := l.Get(ctx, id); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("job %s: %w", id, deadletter.ErrNotOpen)
}

// Purge deletes requeued and discarded rows resolved before before.
func (l *DeadLetters) Purge(ctx context.Context, before time.Time) (int, error) {
	tag, err := l.db.pool.Exec(ctx, `DELETE FROM dead_letters WHERE state <> 'open' AND resolved_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge dead letters: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// jsonbText returns b as text jsonb accepts, or nil (NULL) when b is empty.
func jsonbText(b json.RawMessage) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	if !json.Valid(b) || !utf8.Valid(b) || strings.Contains(s, `\u0000`) {
		q, _ := json.Marshal(clean(s))
		s = string(q)
	}
	return &s
}

// clean makes s storable in a text column: valid UTF-8 without NUL.
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
