package postgres

import (
	"context"
	"fmt"
)

// migrateLock is the advisory lock key that serialises Migrate across
// processes starting at the same time ("escrowjo" in ASCII).
const migrateLock = 0x657363726f776a6f

// schema is applied by Migrate. Every statement is idempotent.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS audit_events (
		event_id       text        PRIMARY KEY,
		actor          text        NOT NULL,
		action         text        NOT NULL,
		transaction_id text,
		occurred_at    timestamptz NOT NULL,
		metadata       jsonb,
		recorded_at    timestamptz NOT NULL DEFAULT now()
	)`,
	`CREATE TABLE IF NOT EXISTS dead_letters (
		id          bigserial   PRIMARY KEY,
		job_id      text        NOT NULL,
		type        text        NOT NULL,
		queue       text        NOT NULL,
		payload     jsonb,
		last_error  text        NOT NULL,
		attempts    integer     NOT NULL,
		permanent   boolean     NOT NULL,
		archived_at timestamptz NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS dead_letters_archived_at_idx ON dead_letters (archived_at)`,
	// The ledger (SPEC §9): exact payload, why, fate, and one open row per
	// failure. archived_at is the failure time.
	`ALTER TABLE dead_letters
		ADD COLUMN IF NOT EXISTS run         text        NOT NULL DEFAULT '',
		ADD COLUMN IF NOT EXISTS payload_raw bytea,
		ADD COLUMN IF NOT EXISTS payload_inexact boolean NOT NULL DEFAULT false,
		ADD COLUMN IF NOT EXISTS why         text        NOT NULL DEFAULT '',
		ADD COLUMN IF NOT EXISTS state       text        NOT NULL DEFAULT 'open',
		ADD COLUMN IF NOT EXISTS actor       text        NOT NULL DEFAULT '',
		ADD COLUMN IF NOT EXISTS reason      text        NOT NULL DEFAULT '',
		ADD COLUMN IF NOT EXISTS resolved_at timestamptz`,
	`UPDATE dead_letters SET why = CASE WHEN permanent THEN 'permanent' ELSE 'exhausted' END WHERE why = ''`,
	// The same failure twice: at most one open row per job and run (Record
	// inserts with ON CONFLICT DO NOTHING against it).
	`CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_open_failure_key ON dead_letters (job_id, run) WHERE state = 'open'`,
	`CREATE INDEX IF NOT EXISTS dead_letters_job_idx ON dead_letters (job_id)`,
	`CREATE INDEX IF NOT EXISTS dead_letters_list_idx ON dead_letters (archived_at DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS dead_letters_resolved_idx ON dead_letters (resolved_at) WHERE state <> 'open'`,
	// One escrow's or one partner's dead letters (List's transactionId and
	// partnerId filters, most recent failure first): the expressions are
	// exactly the ones listQuery writes, or the planner cannot use them.
	`CREATE INDEX IF NOT EXISTS dead_letters_transaction_idx ON dead_letters ((payload->>'transactionId'), archived_at DESC, id DESC)`,
	`CREATE INDEX IF NOT EXISTS dead_letters_partner_idx ON dead_letters ((payload->>'partnerId'), archived_at DESC, id DESC)`,
	// The flow and step of a job of a flow (package flows).
	`ALTER TABLE dead_letters
		ADD COLUMN IF NOT EXISTS flow text NOT NULL DEFAULT '',
		ADD COLUMN IF NOT EXISTS step text NOT NULL DEFAULT ''`,
}

// Migrate creates the tables and indexes that are absent, in one
// transaction under an advisory lock, so that several processes may call it
// at start-up at once. Calling it again changes nothing.
func (db *DB) Migrate(ctx context.Context) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	for _, stmt := range schema {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: commit: %w", err)
	}
	return nil
}
