package outbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// Table is the outbox table's name.
const Table = "escrowjobs_outbox"

// channel is the LISTEN/NOTIFY channel Add notifies on commit.
const channel = "escrowjobs_outbox"

// Execer is what Migrate needs: a *pgx.Conn, *pgxpool.Pool or pgx.Tx.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// schema runs as one statement holding a transaction-scoped advisory lock:
// CREATE TABLE IF NOT EXISTS alone fails with a unique violation in
// pg_type when two processes (a relay and a service) start at once.
const schema = `
DO $$
BEGIN
PERFORM pg_advisory_xact_lock(hashtext('escrowjobs_outbox_migrate'));
CREATE TABLE IF NOT EXISTS escrowjobs_outbox (
	id           bigserial   PRIMARY KEY,
	job_id       text        NOT NULL,
	task_type    text        NOT NULL,
	payload      bytea       NOT NULL,
	queue        text        NOT NULL,
	timeout_ms   bigint      NOT NULL DEFAULT 0,
	max_retry    integer     NOT NULL,
	retention_ms bigint      NOT NULL DEFAULT 0,
	process_at   timestamptz,
	headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
	created_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT escrowjobs_outbox_job_id UNIQUE (job_id)
);
END
$$`

// Migrate creates the outbox table if it does not exist. It is idempotent
// and safe to run from several processes at once; NewRelay calls it too.
func Migrate(ctx context.Context, db Execer) error {
	if _, err := db.Exec(ctx, schema); err != nil {
		return fmt.Errorf("outbox: create table %s: %w", Table, err)
	}
	return nil
}
