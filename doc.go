// Package escrowjobs is the background-job layer of an escrow service, on
// asynq (Redis): customer e-mails, Stripe captures and refunds, signed
// partner webhooks, dispute notifications and an audit log, each retried
// on a 2 s / 4 s / 8 s schedule, never done twice where the peer lets us
// prevent it, and kept in a durable dead-letter log when it cannot succeed.
//
// This root package holds no code: it is the map. The end-to-end suite of
// the nine job types against real peers is its test (tasks_test.go).
//
// # Where to start
//
//   - Producing jobs: package tasks (tasks.NewClient, the nine constructors
//     such as tasks.NewSendReleaseEmailTask, tasks.FromJSON for types by name).
//   - The job types: tasks.Types, the one registry, and package payloads,
//     where each payload struct names its own task type.
//   - Running jobs: cmd/server (the worker process; "server -dev" needs no
//     configuration), built from packages worker and handlers.
//   - Producing jobs inside a PostgreSQL transaction: package outbox
//     (outbox.Add; cmd/server relays with OUTBOX_DATABASE_URL), shown whole
//     in examples/escrow, a runnable escrow API.
//   - Operating: cmd/monitor (asynqmon UI, JSON admin API, /metrics) and
//     cmd/jobctl (status, stats, dead letters, requeue), both over
//     tasks.Inspector and the dead-letter desk, repair.Desk.
//
// # Packages
//
//	payloads/     the nine payload structs: validation, task type, dedupe key, optional queue/timeout (a leaf)
//	retry/        the retry policy: 3 retries, 2/4/8 s, a peer's Retry-After, permanent failures (a leaf)
//	tasks/        the registry of job types, constructors, the enqueue client, the Inspector
//	outbox/       jobs added in the caller's PostgreSQL transaction, and the relay that moves them to Redis
//	handlers/     one handler family per side effect, the asynq ServeMux, the adapter interfaces
//	email/        SMTP (go-mail) and Resend mailers, the e-mail templates
//	payments/     the Stripe adapter (stripe-go, idempotency keys from the job ID)
//	webhook/      Standard Webhooks signing and verifying, the body partners receive (standard library only)
//	partner/      partner delivery: the registry, the sender, circuit state and limits in Redis, redelivery
//	audit/        the JSON-lines audit sink (postgres/ is the PostgreSQL one)
//	postgres/     PostgreSQL audit sink and dead-letter log
//	deadletter/   the durable dead-letter log (a JSON-lines file)
//	repair/       the dead-letter desk: list, requeue with the full budget, discard, purge
//	worker/       asynq servers with the exact retry schedule and dead-letter recording
//	scheduler/    periodic jobs and the dead-letter watchdog (signed alerts)
//	monitor/      asynqmon behind auth, the operator console, the JSON admin API, /healthz, /metrics
//	console/      the operator console's pages and repairs (html/template, no JavaScript), mounted by the monitor
//	devmode/      what "server -dev" runs instead of infrastructure: in-memory Redis, log adapters, demo traffic
//	cmd/          server, monitor, jobctl, loadgen: thin binaries over the packages; cmd/internal holds
//	              what only they use: cmdenv (env, logger, main), ledgerenv (the ledger from the env),
//	              logbridge (other libraries' log lines onto slog)
//	examples/     escrow: a runnable escrow API on PostgreSQL that adds its jobs through the outbox
//	internal/     production machinery that imports nothing above it: httpserve (the HTTP endpoints'
//	              limits and serve loop), jsonl (the shared append-only file under audit/ and deadletter/),
//	              apiurl (keyed API base URLs), asynqkey (the asynq Redis key names the code uses by hand),
//	              asynqmsg (asynq's stored message for the scripts that write jobs), combine (commands of
//	              many goroutines in shared pipelines), eventorder and historyindex (the partner order and
//	              history keys the scripts share)
//	peertest/     the real peers the tests start (redis-server, PostgreSQL, mailpit, stripe-mock); not a stable API
//	escrowtest/   the one shared kit of test doubles and helpers; not a stable API
//	faults/       the fault suites: process (cmd/server killed and stopped mid-run) and redis (outages, Cluster, Sentinel)
//
// # The path of a job
//
// Take a "funds released" e-mail:
//
//  1. The escrow service builds it: tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{…})
//     validates the payload (payloads.Validate names every bad field), encodes
//     it as JSON and applies the type's defaults: queue, timeout, retry.Max,
//     one hour of retention and the job ID "send_release_email:<dedupe key>".
//  2. tasks.Client.Enqueue stores it in Redis within 2 s, or returns the
//     existing job's ID and tasks.ErrDuplicate. (Or outbox.Add writes it in
//     the service's transaction and cmd/server's relay enqueues it after the
//     commit, under the same job ID.)
//  3. In cmd/server, a worker.Worker fetches it from its queue and the
//     handlers.NewServeMux routes it by task type (one route per registered
//     type) to handlers.Email.Release, behind handlers.Typed, which decodes
//     and validates again (a bad payload is archived at once).
//  4. The handler calls its adapter through a small interface
//     (handlers.Mailer): email.SMTP or email.Resend renders the template the
//     registry names and delivers it, with a Message-ID or Idempotency-Key
//     derived from the job ID, so a retry is not a second mail.
//  5. On failure the worker retries after 2, 4 and 8 s (retry.Delay, or the
//     peer's longer Retry-After); after the last, or at once for a permanent
//     error, the job is archived and written to the dead-letter log, where
//     jobctl and the monitor can list and requeue it with its full budget.
//
// The other types take the same path to their own adapters: payments.Stripe,
// partner.Sender, the audit sinks, and the dispute fan-out, which enqueues
// further typed jobs.
package escrowjobs
