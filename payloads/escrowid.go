package payloads

// ValidateEscrowID checks an escrow (transaction) ID given on its own, as
// the history lookups take it: the rule of the `escrowid` tag. The error is
// a *ValidationError naming the field transactionId.
func ValidateEscrowID(id string) error {
	if isID(id) {
		return nil
	}
	return &ValidationError{Fields: []FieldError{{Field: "transactionId", Message: "must be 1-64 characters of letters, digits, '-', '_' or '.'"}}}
}

// Escrowed is a payload that belongs to one escrow: its jobs are indexed
// by transaction ID for the escrow's history (tasks.Inspector.History).
type Escrowed interface {
	// EscrowID is the payload's transactionId ("" when it has none).
	EscrowID() string
}

// EscrowID is the transactionId of the escrow the e-mail is about.
func (p SendReleaseEmail) EscrowID() string { return p.TransactionID }

// EscrowID is the transactionId of the escrow the e-mail is about.
func (p SendRefundEmail) EscrowID() string { return p.TransactionID }

// EscrowID is the transactionId of the escrow the e-mail is about.
func (p SendDisputeEmail) EscrowID() string { return p.TransactionID }

// EscrowID is the transactionId of the escrow the e-mail is about.
func (p SendPaymentConfirmedEmail) EscrowID() string { return p.TransactionID }

// EscrowID is the transactionId of the escrow being captured.
func (p StripeCapturePayment) EscrowID() string { return p.TransactionID }

// EscrowID is the transactionId of the escrow being refunded.
func (p StripeRefundPayment) EscrowID() string { return p.TransactionID }

// EscrowID is the transactionId of the escrow whose status changed.
func (p WebhookEscrowStatusChanged) EscrowID() string { return p.TransactionID }

// EscrowID is the transactionId of the disputed escrow.
func (p NotifyDisputeResolved) EscrowID() string { return p.TransactionID }

// EscrowID is the transactionId the audit event is about ("" when none).
func (p AuditLogCreated) EscrowID() string { return p.TransactionID }
