package main

import (
	"context"
	"fmt"

	"github.com/escrowjobs/escrowjobs/outbox"
)

// escrowsSchema holds an advisory lock so that two instances starting at
// once do not race on CREATE TABLE IF NOT EXISTS.
const escrowsSchema = `
DO $$
BEGIN
PERFORM pg_advisory_xact_lock(hashtext('escrow_example_migrate'));
CREATE TABLE IF NOT EXISTS escrows (
	id                text        PRIMARY KEY,
	status            text        NOT NULL,
	buyer_email       text        NOT NULL,
	seller_email      text        NOT NULL,
	amount            bigint      NOT NULL,
	currency          text        NOT NULL,
	payment_intent_id text        NOT NULL,
	partner_id        text        NOT NULL DEFAULT '',
	dispute_id        text        NOT NULL DEFAULT '',
	resolution        text        NOT NULL DEFAULT '',
	created_at        timestamptz NOT NULL DEFAULT now(),
	updated_at        timestamptz NOT NULL DEFAULT now()
);
END
$$`

// Migrate creates the escrows table and the outbox table.
func Migrate(ctx context.Context, db outbox.Execer) error {
	if _, err := db.Exec(ctx, escrowsSchema); err != nil {
		return fmt.Errorf("create table escrows: %w", err)
	}
	return outbox.Migrate(ctx, db)
}
