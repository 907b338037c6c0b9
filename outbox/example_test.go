package outbox_test

import (
	"context"
	"database/sql"
	"log"
	"os"

	"github.com/escrowjobs/escrowjobs/outbox"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver of database/sql
)

// Release an escrow and capture its payment in one transaction: if the
// commit fails, no capture job exists; once it succeeds, the relay in
// cmd/server (OUTBOX_DATABASE_URL) enqueues it even if Redis is down now.
func ExampleAdd() {
	ctx := context.Background()
	db, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := outbox.Migrate(ctx, db); err != nil {
		log.Fatal(err)
	}

	capture, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{
		TransactionID: "esc-123", PaymentIntentID: "pi_3MtwBwLkdIwHu7ix28a3tqPa",
	})
	if err != nil {
		log.Fatal(err) // names the bad field; nothing was written
	}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE escrows SET status = 'released' WHERE id = $1 AND status = 'funded'`, "esc-123"); err != nil {
			return err
		}
		return outbox.Add(ctx, tx, capture) // job stripe_capture_payment:capture-pi_3Mtw… on commit
	})
	if err != nil {
		log.Fatal(err) // rolled back: no escrow change, no job
	}
}

// The same release in a service on database/sql (pgx's stdlib driver).
func ExampleAddSQL() {
	ctx := context.Background()
	db, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	capture, err := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{
		TransactionID: "esc-123", PaymentIntentID: "pi_3MtwBwLkdIwHu7ix28a3tqPa",
	})
	if err != nil {
		log.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `UPDATE escrows SET status = 'released' WHERE id = $1 AND status = 'funded'`, "esc-123"); err != nil {
		log.Fatal(err)
	}
	if err := outbox.AddSQL(ctx, tx, capture); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err) // no escrow change, no job
	}
}
