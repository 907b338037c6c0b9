package tasks

import (
	"encoding/json"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// MaskPayload is a job's payload for display (the API, the UI, a dead
// letter): decoded by its type, the fields that type declares addresses
// masked whatever they hold, every other address masked where it is found.
// A payload of an unknown type is masked by payloads.MaskedJSON.
func MaskPayload(taskType string, raw []byte) json.RawMessage {
	if k, err := Lookup(taskType); err == nil {
		return k.MaskPayload(raw)
	}
	return payloads.MaskedJSON(raw)
}
