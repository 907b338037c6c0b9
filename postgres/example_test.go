package postgres_test

import (
	"context"
	"log"
	"os"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/postgres"
)

func ExampleOpen() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, os.Getenv("AUDIT_DATABASE_URL"))
	if err != nil {
		log.Fatal(err) // e.g. postgres: connect to postgres://app:xxxxx@db:5432/escrow: …
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	sink := db.AuditSink()
	e := payloads.AuditLogCreated{EventID: "evt-1", Actor: "user-7", Action: "escrow.released", OccurredAt: "2024-05-01T12:00:00Z"}
	_ = sink.WriteAudit(ctx, e) // a second write of evt-1 stores nothing
}
