// Package monitor is the operator's window on the escrow jobs: the asynqmon
// web UI, the operator console (package console), a JSON admin API, a
// health check and Prometheus metrics, as one http.Handler.
//
// # Routes
//
//	/monitor/                                asynqmon (HTTP Basic auth)
//	/console/                                the operator console (the same Basic auth): dead letters,
//	                                         flows, escrows, partners and their repairs (package console)
//	POST /api/v1/jobs                        enqueue {type, payload, dedupeKey?, processIn?}
//	GET  /api/v1/jobs/{id}                   a job's state (tasks.Job)
//	GET  /api/v1/stats                       queue counts ([]tasks.QueueStats)
//	GET  /api/v1/dead-letters?limit=&cursor=&type=&queue=&transactionId=&partnerId=&state=&since=&until=
//	                                         the dead-letter ledger, newest failure first: {"items": […], "next": cursor|null}
//	GET  /api/v1/dead-letters/{id}           the job's latest dead letter
//	POST /api/v1/dead-letters/{id}/requeue   {reason?}: the job runs again with its full retry budget
//	POST /api/v1/dead-letters/{id}/discard   {reason}: resolved without a rerun
//	POST /api/v1/dead-letters/requeue        {filter, dryRun?, reason?}: every open dead letter matching
//	GET  /healthz                            Redis PING: 200 {"status":"ok"} or 503
//	GET  /metrics                            Prometheus text (unauthenticated)
//
// The API wants "Authorization: Bearer <token>" (JOB_PROCESSOR_SECRET_TOKEN);
// both the token and the Basic credentials are compared in constant time.
// Every error is JSON of one shape,
//
//	{"error": {"code": "invalid_payload", "message": "…", "fields": [{"field": "recipientEmail", "message": "…"}]}}
//
// with fields only for validation errors. Codes: unauthorized, forbidden,
// not_found, method_not_allowed, invalid_request, invalid_payload,
// unknown_type, payload_too_large, unsupported_media_type, not_open,
// cannot_rebuild, read_only, unavailable, internal.
//
// Dead letters come from the ledger (Config.DeadLetters, package
// deadletter), not from asynq's capped archive; repairs go through
// repair.Desk, and the UI's Run of archived jobs does too, recording
// the Basic-auth user as the actor.
//
// # Privacy
//
// E-mail addresses are masked ("j***@example.com") everywhere the monitor
// shows a job: the API's payloads and errors, and asynqmon's payloads,
// results and error messages (its formatter plus a pass over every asynqmon
// API response). Tokens, passwords and raw addresses never reach the log.
//
// # Loopback mode
//
// Without credentials [New] refuses to build a monitor, unless
// Config.LoopbackNoAuth is set: then the missing credentials are not asked
// for, and every request must come from a loopback address with a loopback
// Host header (so a DNS-rebinding page cannot reach it either). The binary
// that serves it must also listen on 127.0.0.1 only; cmd/monitor does.
// Mutating requests from another origin (a browser's cross-site POST) are
// refused in every mode.
package monitor
