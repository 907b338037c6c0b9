package payments

import (
	"crypto/sha256"
	"encoding/hex"
)

const (
	// MetadataJob is the metadata key, on a refund and on a captured
	// PaymentIntent, whose value is the IdempotencyKey of the job that made it.
	MetadataJob = "escrowjobs_job"
	// MetadataTransaction is the metadata key holding the escrow transaction ID.
	MetadataTransaction = "transaction_id"
	// MetadataRefund is the metadata key, on a refund, holding the caller's
	// refund reference (payloads.StripeRefundPayment.RefundID).
	MetadataRefund = "escrowjobs_refund"
)

// maxIdempotencyKey is the longest Idempotency-Key Stripe accepts.
const maxIdempotencyKey = 255

// IdempotencyKey is the Stripe Idempotency-Key of job jobID, the same on
// every attempt: the job ID itself when it is at most 255 printable ASCII
// characters, else "escrowjobs-" and the hex SHA-256 of the job ID. It is
// also the value of the MetadataJob metadata.
func IdempotencyKey(jobID string) string {
	if len(jobID) <= maxIdempotencyKey && printable(jobID) {
		return jobID
	}
	sum := sha256.Sum256([]byte(jobID))
	return "escrowjobs-" + hex.EncodeToString(sum[:])
}

// CancelKey is the Stripe Idempotency-Key of the cancel that a refund job
// jobID sends for an uncaptured PaymentIntent: IdempotencyKey of jobID and
// "/cancel". It differs from the job's refund key, so that a refund the
// same job sends later (the PaymentIntent was captured meanwhile) is not
// refused as a reuse of the key with other parameters.
func CancelKey(jobID string) string { return IdempotencyKey(jobID + "/cancel") }

// printable reports whether s is non-empty and only ASCII from '!' to '~'.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return s != ""
}
