// Package scheduler runs the periodic side of escrowjobs inside the worker
// process: configured periodic jobs and the dead-letter watchdog. Any number
// of worker processes may run it against the same Redis; each periodic job
// still runs once per period and each alert is raised once per period.
//
// # Periodic jobs
//
// An [Entry] pairs a cron spec with a builder of one of the nine typed jobs.
// In Go, [Periodic] makes one from a typed constructor and its payload:
//
//	scheduler.Periodic("nightly-audit", "0 3 * * *", tasks.NewAuditLogCreatedTask, payloads.AuditLogCreated{…})
//
// An operator lists entries in a JSON file (SCHEDULE_FILE) read by
// [LoadEntries]:
//
//	{"entries": [{"name": "nightly-audit", "cron": "0 3 * * *",
//	              "type": "audit_log_created", "payload": {…}}]}
//
// Every entry is checked before the scheduler starts: its payload goes
// through the same strict decoding and validation as any other producer's
// (tasks.FromJSON), and its cron spec through robfig/cron's standard parser
// (five fields, or a descriptor such as @hourly or @every 10m). Errors name
// the entry and the field. Specs are evaluated in UTC unless they start with
// CRON_TZ=<zone>; @every durations are aligned to multiples of the duration
// since the Unix epoch, so every process computes the same fire times.
//
// When an entry fires for the scheduled time P, the job is built with the
// dedupe key "sched-<name>-<P in Unix seconds>". Every process derives the
// same job ID for the same period, so whichever enqueues first wins and the
// others get tasks.ErrDuplicate, which is logged at debug level. A process
// that was stopped or late does not catch up on missed periods.
//
// # Dead-letter watchdog
//
// Every WatchdogInterval (one minute by default, aligned to the clock) the
// watchdog reads the per-queue counts. A queue whose archived count is above
// ArchivedThreshold, or grew since this process's previous check, raises an
// alert: an ERROR log line "dead letters growing" with the attributes queue,
// archived, previous and threshold, and, when AlertURL is set, a POST of an
// [Alert] signed like a Standard Webhook (webhook-id, webhook-timestamp,
// webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>" with the
// whsec_ secret AlertSecret). The alert for one queue and one period is
// claimed in Redis (SET NX) first, so several processes raise it once. A
// failed POST is logged and never stops the scheduler; the secret is never
// logged, and only the host of AlertURL is.
package scheduler
