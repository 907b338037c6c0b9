package payloads

import (
	"encoding/json"
	"time"
)

// Escrow statuses, as carried by WebhookEscrowStatusChanged.
const (
	StatusPending   = "pending"
	StatusFunded    = "funded"
	StatusReleased  = "released"
	StatusRefunded  = "refunded"
	StatusDisputed  = "disputed"
	StatusResolved  = "resolved"
	StatusCancelled = "cancelled"
)

// WebhookEscrowStatusChanged is delivered to a partner as a signed webhook.
// The partner's URL and secret come from the partner registry, never from here.
type WebhookEscrowStatusChanged struct {
	EventID        string `json:"eventId"        validate:"required,escrowid"`
	PartnerID      string `json:"partnerId"      validate:"required,escrowid"`
	TransactionID  string `json:"transactionId"  validate:"required,escrowid"`
	PreviousStatus string `json:"previousStatus" validate:"required,escrowstatus"`
	Status         string `json:"status"         validate:"required,escrowstatus,nefield=PreviousStatus"`
	OccurredAt     string `json:"occurredAt"     validate:"required,rfc3339"`
	// Sequence orders the events of one escrow: it grows with each event
	// in the order they were created, and the partner receives it in the
	// body's sequence. Leave it 0: tasks.Client.Enqueue assigns it from the
	// escrow's counter in Redis when the job is enqueued and stores it in
	// the job, so every attempt and redelivery carries the same one.
	Sequence int64 `json:"sequence,omitempty" validate:"gte=0"`
}

// TaskType is the asynq task type. It never changes after a deploy.
func (WebhookEscrowStatusChanged) TaskType() string { return "webhook_escrow_status_changed" }

// DedupeKey is event-<eventId>.
func (p WebhookEscrowStatusChanged) DedupeKey() string { return "event-" + p.EventID }

// Timeout bounds one processing attempt.
func (WebhookEscrowStatusChanged) Timeout() time.Duration { return webhookTimeout }

// Dispute resolutions.
const (
	ResolutionReleaseToSeller = "release_to_seller"
	ResolutionRefundToBuyer   = "refund_to_buyer"
	ResolutionSplit           = "split"
)

// NotifyDisputeResolved fans out into the e-mails to buyer and seller and,
// when PartnerID is set, the partner's webhook.
type NotifyDisputeResolved struct {
	DisputeID     string `json:"disputeId"           validate:"required,escrowid"`
	TransactionID string `json:"transactionId"       validate:"required,escrowid"`
	Resolution    string `json:"resolution"          validate:"required,oneof=release_to_seller refund_to_buyer split"`
	BuyerEmail    string `json:"buyerEmail"          validate:"recipient"`
	SellerEmail   string `json:"sellerEmail"         validate:"recipient"`
	PartnerID     string `json:"partnerId,omitempty" validate:"omitempty,escrowid"`
}

// TaskType is the asynq task type. It never changes after a deploy.
func (NotifyDisputeResolved) TaskType() string { return "notify_dispute_resolved" }

// DedupeKey is dispute-<disputeId>-resolved.
func (p NotifyDisputeResolved) DedupeKey() string { return "dispute-" + p.DisputeID + "-resolved" }

// Timeout bounds one processing attempt.
func (NotifyDisputeResolved) Timeout() time.Duration { return notifyTimeout }

// MaxMetadataBytes caps AuditLogCreated.Metadata.
const MaxMetadataBytes = 8 << 10

// AuditLogCreated records one audit event. Writing it twice is harmless: the
// sink keys it by EventID.
type AuditLogCreated struct {
	EventID       string          `json:"eventId"                 validate:"required,escrowid"`
	Actor         string          `json:"actor"                   validate:"required,escrowid"`
	Action        string          `json:"action"                  validate:"required,escrowid"`
	TransactionID string          `json:"transactionId,omitempty" validate:"omitempty,escrowid"`
	OccurredAt    string          `json:"occurredAt"              validate:"required,rfc3339"`
	Metadata      json.RawMessage `json:"metadata,omitempty"      validate:"omitempty,metadata"`
}

// TaskType is the asynq task type. It never changes after a deploy.
func (AuditLogCreated) TaskType() string { return "audit_log_created" }

// DedupeKey is audit-<eventId>.
func (p AuditLogCreated) DedupeKey() string { return "audit-" + p.EventID }

// Queue is the queue the task is processed from.
func (AuditLogCreated) Queue() string { return QueueLow }

// Timeout bounds one processing attempt.
func (AuditLogCreated) Timeout() time.Duration { return auditTimeout }
