// Package webhook is the partner side of the escrow service's webhooks:
// the function a partner runs to verify a request it receives, the signing
// the service does, and the JSON body partners receive. It imports only the
// standard library, so a partner can use it without pulling in the
// service's dependencies (deps_test.go keeps it that way).
//
// # Signing
//
// Every request follows the Standard Webhooks specification
// (https://www.standardwebhooks.com): the headers webhook-id,
// webhook-timestamp (unix seconds at send time) and webhook-signature, whose
// value is "v1," followed by the base64 HMAC-SHA256 of "id.timestamp.body".
// Secrets look like "whsec_<base64>"; the key is the decoded part. While a
// partner rotates its secret the service holds several, and every request
// carries one signature per secret, space-separated. [Sign] computes one
// signature, a [Signer] sets all three headers with one signature per key,
// and [Verify] is what a partner runs on a request it receives.
//
// # Body
//
// A partner receives a [Body] of type [EventEscrowStatusChanged], whose data
// is a [StatusData].
//
// Delivering webhooks to partners (the registry, the sender, the
// per-partner state and redelivery) is package partner.
package webhook
