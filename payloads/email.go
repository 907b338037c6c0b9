package payloads

// SendReleaseEmail asks for the "funds released" e-mail to one party of an escrow.
type SendReleaseEmail struct {
	TransactionID  string `json:"transactionId"           validate:"required,escrowid"`
	RecipientEmail string `json:"recipientEmail"          validate:"recipient"`
	Amount         int64  `json:"amount"                  validate:"amount"`
	Currency       string `json:"currency"                validate:"required,iso4217"`
	RecipientName  string `json:"recipientName,omitempty" validate:"omitempty,max=100,noheaderbreak"`
}

// TaskType is the asynq task type. It never changes after a deploy.
func (SendReleaseEmail) TaskType() string { return "send_release_email" }

// DedupeKey is escrow-<transactionId>-release-<recipient hash>.
func (p SendReleaseEmail) DedupeKey() string {
	return "escrow-" + p.TransactionID + "-release-" + RecipientHash(p.RecipientEmail)
}

// SendRefundEmail asks for the "refund issued" e-mail to one party of an escrow.
type SendRefundEmail struct {
	TransactionID  string `json:"transactionId"    validate:"required,escrowid"`
	RecipientEmail string `json:"recipientEmail"   validate:"recipient"`
	Amount         int64  `json:"amount"           validate:"amount"`
	Currency       string `json:"currency"         validate:"required,iso4217"`
	Reason         string `json:"reason,omitempty" validate:"omitempty,max=500,bodytext"`
}

// TaskType is the asynq task type. It never changes after a deploy.
func (SendRefundEmail) TaskType() string { return "send_refund_email" }

// DedupeKey is escrow-<transactionId>-refund-<recipient hash>.
func (p SendRefundEmail) DedupeKey() string {
	return "escrow-" + p.TransactionID + "-refund-" + RecipientHash(p.RecipientEmail)
}

// SendDisputeEmail tells one party that a dispute was opened (or, through a
// custom dedupe key, how it ended).
type SendDisputeEmail struct {
	TransactionID  string `json:"transactionId"  validate:"required,escrowid"`
	DisputeID      string `json:"disputeId"      validate:"required,escrowid"`
	RecipientEmail string `json:"recipientEmail" validate:"recipient"`
	Reason         string `json:"reason"         validate:"required,max=1000,bodytext"`
}

// TaskType is the asynq task type. It never changes after a deploy.
func (SendDisputeEmail) TaskType() string { return "send_dispute_email" }

// DedupeKey is dispute-<disputeId>-<recipient hash>.
func (p SendDisputeEmail) DedupeKey() string {
	return "dispute-" + p.DisputeID + "-" + RecipientHash(p.RecipientEmail)
}

// SendPaymentConfirmedEmail confirms to the buyer that a payment was received.
type SendPaymentConfirmedEmail struct {
	TransactionID   string `json:"transactionId"   validate:"required,escrowid"`
	PaymentIntentID string `json:"paymentIntentId" validate:"required,paymentintent"`
	RecipientEmail  string `json:"recipientEmail"  validate:"recipient"`
	Amount          int64  `json:"amount"          validate:"amount"`
	Currency        string `json:"currency"        validate:"required,iso4217"`
}

// TaskType is the asynq task type. It never changes after a deploy.
func (SendPaymentConfirmedEmail) TaskType() string { return "send_payment_confirmed_email" }

// DedupeKey is payment-<paymentIntentId>-<recipient hash>.
func (p SendPaymentConfirmedEmail) DedupeKey() string {
	return "payment-" + p.PaymentIntentID + "-" + RecipientHash(p.RecipientEmail)
}
