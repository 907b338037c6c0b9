package main

import (
	"context"
	"fmt"

	"github.com/escrowjobs/escrowjobs/outbox"
)

// paymentIntentIndex makes a PaymentIntent belong to one escrow: a second
// escrow with it is refused (409 naming paymentIntentId). Creating it on a
// table that already holds two escrows of one PaymentIntent fails, naming
// the index: resolve those first.
const paymentIntentIndex = "escrows_payment_intent_id_key"

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
ALTER TABLE escrows ADD COLUMN IF NOT EXISTS seller_amount bigint NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX IF NOT EXISTS escrows_payment_intent_id_key ON escrows (payment_intent_id);
END
$$`

// Migrate creates or upgrades the escrows table (each statement is
// idempotent) and creates the outbox table.
func Migrate(ctx context.Context, db outbox.Execer) error {
	if _, err := db.Exec(ctx, escrowsSchema); err != nil {
		return fmt.Errorf("create table escrows: %w", err)
	}
	return outbox.Migrate(ctx, db)
}
