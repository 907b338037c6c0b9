// Package webhook delivers signed webhooks to escrow partners and gives
// partners the function that verifies them.
//
// # Signing
//
// Every request follows the Standard Webhooks specification
// (https://www.standardwebhooks.com): the headers webhook-id,
// webhook-timestamp (unix seconds at send time) and webhook-signature, whose
// value is "v1," followed by the base64 HMAC-SHA256 of "id.timestamp.body".
// Secrets look like "whsec_<base64>"; the key is the decoded part. While a
// partner rotates its secret the registry holds several, and every request
// carries one signature per secret, space-separated. [Sign] computes one
// signature; [Verify] is what a partner runs on a request it receives.
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
// [NewSender] returns the handlers.Sender the worker uses. It posts the body
// with a 10 s timeout, reads at most 64 KiB of the answer, never follows a
// redirect and never routes through an environment proxy. Unless private
// networks are allowed, it refuses at dial time to connect to loopback,
// private, link-local (so the cloud metadata address), CGNAT, multicast,
// unspecified and reserved addresses: the check runs on the resolved address
// that is about to be connected, so DNS rebinding cannot get around it.
//
// Outcomes map onto the worker's retry policy: 2xx is success; 3xx, 410 and
// the other 4xx are permanent (the error wraps asynq.SkipRetry); 408, 409,
// 425, 429, 5xx, timeouts and network errors are transient; a Retry-After on
// 429 or 503 becomes a *retry.AfterError. An unknown partner and a
// refused address are permanent.
package webhook
