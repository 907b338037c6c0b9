// Package audit stores audit events (payloads.AuditLogCreated) without a
// database.
//
// [File] appends one JSON line per event to an append-only file
// (AUDIT_LOG_PATH), fsynced on every write, and ignores an event whose
// eventId it already holds, also across restarts. [Log] is the -dev sink: it
// writes the event to a *slog.Logger and stores nothing.
//
// With AUDIT_DATABASE_URL set, package postgres is the sink instead.
package audit
