package partner

// Delivery is one signed webhook to one partner.
type Delivery struct {
	// ID is the webhook-id header: stable across attempts (the event ID,
	// not the job ID).
	ID string
	// PartnerID selects URL and secrets from the partner registry.
	PartnerID string
	// Body is the exact JSON body that is signed and sent.
	Body []byte
	// TransactionID is the escrow the event belongs to. With it, a
	// partner that is "ordered" gets the escrow's events strictly in
	// sequence, and a delivery releases the events waiting behind it;
	// empty: no ordering.
	TransactionID string
}
