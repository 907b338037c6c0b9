package webhook

// EventEscrowStatusChanged is the type of the event partners receive when
// an escrow changes status.
const EventEscrowStatusChanged = "escrow.status_changed"

// Body is the JSON a partner receives, in the Standard Webhooks shape
// {type, timestamp, data}.
type Body struct {
	Type      string     `json:"type"`
	Timestamp string     `json:"timestamp"`
	Data      StatusData `json:"data"`
}

// StatusData is the data of an escrow.status_changed event.
type StatusData struct {
	EventID        string `json:"eventId"`
	TransactionID  string `json:"transactionId"`
	PreviousStatus string `json:"previousStatus"`
	Status         string `json:"status"`
	// Sequence grows with each event of the escrow in the order the events
	// were created; it is the same on every attempt and redelivery. A
	// receiver ignores an event whose sequence is not above the last one it
	// applied for the transaction.
	Sequence int64 `json:"sequence"`
}
