// Package postgres keeps audit events and dead letters in PostgreSQL.
//
// # Use
//
//	db, err := postgres.Open(ctx, os.Getenv("AUDIT_DATABASE_URL"))
//	if err != nil { … }
//	defer db.Close()
//	if err := db.Migrate(ctx); err != nil { … }
//	sink := db.AuditSink()      // a handlers.AuditSink
//	dead := db.DeadLetters()    // a deadletter.Log
//
// # Tables
//
// [DB.Migrate] creates audit_events (keyed by event_id, so writing an event
// twice stores it once) and dead_letters (one row per archived job, indexed
// by archived_at) when they are absent. It never alters or drops anything.
//
// # Errors
//
// A database that is down, slow or restarting gives a plain error: the job
// is retried. Data the database refuses (SQLSTATE classes 22 data
// exception, 23 integrity constraint violation, 54 program limit exceeded)
// gives an error that wraps asynq.SkipRetry: retrying cannot help. No error
// contains the password of the database URL.
package postgres
