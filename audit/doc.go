// Package audit stores audit events (payloads.AuditLogCreated) without a
// database.
//
// [File] appends one JSON line per event to an append-only file
// (AUDIT_LOG_PATH), fsynced on every write, and ignores an event whose
// eventId it already holds, also across restarts. The -dev sink, which only
// logs, is devmode.Audit.
//
// With AUDIT_DATABASE_URL set, package postgres is the sink instead.
package audit
