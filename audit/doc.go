// Package audit stores audit events (payloads.AuditLogCreated) without a
// database.
//
// [File] appends one JSON line per event to an append-only file
// (AUDIT_LOG_PATH), fsynced on every write, and ignores an event whose
// eventId it already holds, also across restarts and across worker
// processes on one host sharing the file (each write holds an flock and
// first reads what the others appended). It remembers the event IDs of the
// last 25 hours ([DefaultRememberFor]), at most [DefaultRememberAtMost] of
// them, so its memory is bounded. The -dev sink, which only logs, is
// devmode.Audit.
//
// With AUDIT_DATABASE_URL set, package postgres is the sink instead.
package audit
