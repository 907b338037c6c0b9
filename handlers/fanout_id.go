package handlers

import (
	"crypto/sha256"
	"encoding/hex"
)

// maxEventID is the longest eventId the validator accepts.
const maxEventID = 64

// disputeResolvedEventID is the webhook eventId of a resolved dispute:
// "dispute-<disputeId>-resolved" when that fits in 64 characters, else
// "dispute-resolved-" and 40 hex digits of the SHA-256 of the disputeId.
// It depends on the disputeId alone, so every attempt of the fan-out
// builds the same webhook job (and the same webhook-id). The hashed form
// ends in hex digits and never in "-resolved", so it cannot equal the
// natural form of another dispute.
func disputeResolvedEventID(disputeID string) string {
	if id := "dispute-" + disputeID + "-resolved"; len(id) <= maxEventID {
		return id
	}
	sum := sha256.Sum256([]byte(disputeID))
	return "dispute-resolved-" + hex.EncodeToString(sum[:20])
}
