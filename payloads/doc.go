// Package payloads defines the nine escrow side-effect payloads.
//
// Each payload is a plain struct with camelCase JSON names, `validate:` tags
// (github.com/go-playground/validator/v10) and four methods that describe it:
//
//   - TaskType: the asynq task type, the only place that string is written;
//   - DedupeKey: the default deduplication key, before it is namespaced by type;
//   - Queue and Timeout: the per-type processing defaults.
//
// The package is a leaf: it depends on the standard library and the validator
// only, so producers, handlers and tools can all share it. Raw e-mail addresses
// never appear in a dedupe key: [RecipientHash] stands in for them, and
// [MaskEmails] hides them in any text that is shown or logged.
package payloads

import "time"

// Queue names, in the order of their weights (critical 6, default 3, low 1).
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
)

// Per-family processing timeouts. The webhook timeout is larger than the
// 10 s HTTP timeout so a slow partner is reported as a timeout, not a kill.
const (
	emailTimeout   = 30 * time.Second
	stripeTimeout  = 60 * time.Second
	webhookTimeout = 20 * time.Second
	notifyTimeout  = 15 * time.Second
	auditTimeout   = 15 * time.Second
)
