// Package payloads defines the nine escrow side-effect payloads.
//
// Each payload is a plain struct with camelCase JSON names, `validate:` tags
// (github.com/go-playground/validator/v10) and two methods that every
// payload has ([Payload]):
//
//   - TaskType: the asynq task type, the only place that string is written;
//   - DedupeKey: the default deduplication key, before it is namespaced by type.
//
// The rules several payloads share, the recipient address and the money
// amounts, are validator aliases written once (recipient, amount,
// amountorall in validate.go); a failure inside one is reported as the
// plain rule that failed.
//
// Two more are optional, for a type whose processing defaults differ from
// the house defaults ([QueueOf], [TimeoutOf]):
//
//   - Queue (a [Queuer]): the queue, [DefaultQueue] when absent;
//   - Timeout (a [Timeouter]): the processing timeout, [DefaultTimeout] when absent.
//
// The package is a leaf: it depends on the standard library and the validator
// only, so producers, handlers and tools can all share it. Raw e-mail addresses
// never appear in a dedupe key: [RecipientHash] stands in for them, and
// [MaskEmails] hides them in any text that is shown or logged.
package payloads
