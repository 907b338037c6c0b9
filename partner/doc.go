// Package partner delivers signed webhooks to escrow partners: the partner
// registry, the sender, the per-partner circuit state and limits shared in
// Redis, and the redelivery of webhook dead letters. The signing itself,
// and what a partner runs to verify a request, is package webhook.
//
// # Partners
//
// [LoadRegistry] reads the partner registry (WEBHOOK_ENDPOINTS_FILE), so no
// URL or secret ever travels in a job payload:
//
//	{"partners": {"acme": {"url": "https://hooks.acme.example/escrow",
//	                       "secrets": ["whsec_…", "whsec_…"]}}}
//
// "secret" takes one secret, "secrets" several; both may be given. URLs must
// be https unless plain http is allowed (tests). Errors name the partner and
// the field, never the secret.
//
// # Delivery
//
// [NewSender] returns the handlers.Sender the worker uses. It signs each
// [Delivery] with webhook.Signer, one signature per secret of the partner,
// posts the body with a 10 s timeout, reads at most 64 KiB of the answer,
// never follows a redirect and never routes through an environment proxy.
// Unless private networks are allowed, it refuses at dial time to connect
// to loopback, private, link-local (so the cloud metadata address), CGNAT,
// multicast, unspecified and reserved addresses: the check runs on the
// resolved address that is about to be connected, so DNS rebinding cannot
// get around it.
//
// Outcomes map onto the worker's retry policy: 2xx is success; 3xx, 410 and
// the other 4xx are permanent (the error wraps asynq.SkipRetry); 408, 409,
// 425, 429, 5xx, timeouts and network errors are transient; a Retry-After on
// 429 or 503 becomes a *retry.AfterError. An unknown partner and a
// refused address are permanent.
//
// # Circuit state, limits and redelivery
//
// [Watcher] keeps the registry live: it re-reads the file when it changes
// and on SIGHUP, and refuses a file that does not validate. [State] is the
// per-partner state every worker process shares in Redis; given to the
// Sender (SenderOptions.State), it gates each delivery: a circuit that opens
// after consecutive transient failures and lets one probe through per
// interval, leased concurrency slots (registry "maxConcurrency", default 4),
// a token bucket ("ratePerSecond"), the pause of a 429/503 Retry-After, and
// the disabled flag set by a 410 Gone. A delivery that may not start returns
// a [*WaitError]: nothing was sent, and the worker neither counts it as an
// attempt nor keeps a slot for it. [Redelivery] requeues webhook dead
// letters: transient ones on a schedule spanning days, those of a disabled
// or unknown partner when it comes back. [DeadLetters] is the small
// interface it needs of the dead-letter store; [LedgerDeadLetters]
// implements it over the dead-letter ledger. [Collector] exports the per-partner
// metrics from Redis.
//
// # Strict order
//
// A partner with "ordered": true in the registry gets the events of one
// escrow strictly in sequence: every event is registered at enqueue in
// its escrow's order set (package internal/eventorder, written by
// tasks.Client.Enqueue), and a delivery whose escrow has an earlier event
// still open returns a [*WaitError] with reason [WaitInOrder]. The event
// ahead is released when it is delivered, discarded (repair.Desk) or a
// final dead letter (Redelivery.Archived), which wakes the next one;
// [State.WaitingBehind] counts the events waiting behind a dead letter.
package partner
