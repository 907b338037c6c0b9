package email

import (
	"crypto/sha256"
	"encoding/hex"
)

// MessageID is the Message-ID, without angle brackets, of the e-mail sent by
// job jobID: the first 32 hex digits of the SHA-256 of the job ID at domain
// (the sender's domain). It is the same on every attempt of the job.
func MessageID(jobID, domain string) string {
	return jobHash(jobID) + "@" + domain
}

// IdempotencyKey is the Resend Idempotency-Key of the e-mail sent by job
// jobID. It is the same on every attempt of the job.
func IdempotencyKey(jobID string) string {
	return "escrowjobs-email-" + jobHash(jobID)
}

func jobHash(jobID string) string {
	sum := sha256.Sum256([]byte(jobID))
	return hex.EncodeToString(sum[:16])
}
