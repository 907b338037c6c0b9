package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/escrowjobs/escrowjobs/deadletter"
)

// DeadLetters is a deadletter.Log in the dead_letters table.
type DeadLetters struct {
	db *DB
}

// DeadLetters returns the dead-letter log of db. Migrate must have run.
func (db *DB) DeadLetters() *DeadLetters { return &DeadLetters{db: db} }

// Record inserts e as one row; it is durable when Record returns nil. A
// payload that is not JSON, or that jsonb cannot hold (a \u0000 escape), is
// stored as a JSON string; NUL bytes and invalid UTF-8 in the text columns
// become U+FFFD, so that no archived job is lost to its own bad bytes.
func (l *DeadLetters) Record(ctx context.Context, e deadletter.Entry) error {
	_, err := l.db.pool.Exec(ctx, `
		INSERT INTO dead_letters (job_id, type, queue, payload, last_error, attempts, permanent, archived_at)
		VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8)`,
		clean(e.ID), clean(e.Type), clean(e.Queue), jsonbText(e.Payload),
		clean(e.LastError), e.Attempts, e.Permanent, e.ArchivedAt)
	if err != nil {
		return classify(err, "postgres: record dead letter %s", e.ID)
	}
	return nil
}

// List returns up to limit entries, newest (by archivedAt) first.
func (l *DeadLetters) List(ctx context.Context, limit int) ([]deadletter.Entry, error) {
	if limit <= 0 {
		return []deadletter.Entry{}, nil
	}
	rows, err := l.db.pool.Query(ctx, `
		SELECT job_id, type, queue, payload::text, last_error, attempts, permanent, archived_at
		FROM dead_letters
		ORDER BY archived_at DESC, id DESC
		LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list dead letters: %w", err)
	}
	defer rows.Close()
	out := make([]deadletter.Entry, 0, min(limit, 100))
	for rows.Next() {
		var (
			e       deadletter.Entry
			payload *string
		)
		if err := rows.Scan(&e.ID, &e.Type, &e.Queue, &payload, &e.LastError, &e.Attempts, &e.Permanent, &e.ArchivedAt); err != nil {
			return nil, fmt.Errorf("postgres: list dead letters: %w", err)
		}
		if payload != nil {
			e.Payload = json.RawMessage(*payload)
		}
		e.ArchivedAt = e.ArchivedAt.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list dead letters: %w", err)
	}
	return out, nil
}

// jsonbText returns b as text jsonb accepts, or nil (NULL) when b is empty.
func jsonbText(b json.RawMessage) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	if !json.Valid(b) || strings.Contains(s, `\u0000`) {
		q, _ := json.Marshal(clean(s))
		s = string(q)
	}
	return &s
}

// clean makes s storable in a text column: valid UTF-8 without NUL.
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
