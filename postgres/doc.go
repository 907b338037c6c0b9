// Package postgres keeps audit events and dead letters in PostgreSQL.
//
// # Use
//
//	db, err := postgres.Open(ctx, os.Getenv("AUDIT_DATABASE_URL"))
//	if err != nil { … }
//	defer db.Close()
//	if err := db.Migrate(ctx); err != nil { … }
//	sink := db.AuditSink()      // a handlers.AuditSink
//	dead := db.DeadLetters()    // a deadletter.Ledger
//
// # Tables
//
// [DB.Migrate] creates audit_events (keyed by event_id, so writing an event
// twice stores it once) and dead_letters (the dead-letter ledger: one row
// per failure, a unique index on open (job_id, run) so recording a failure
// twice stores it once) when they are absent, and adds the ledger's columns
// (exact payload, why, state, actor, reason, resolved_at) to a
// dead_letters table of an older version. It never drops anything.
//
// # Errors
//
// A database that is down, slow or restarting gives a plain error: the job
// is retried. Data the database refuses (SQLSTATE classes 22 data
// exception, 23 integrity constraint violation, 54 program limit exceeded)
// gives an error that wraps asynq.SkipRetry: retrying cannot help. No error
// contains the password of the database URL.
package postgres
