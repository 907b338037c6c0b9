package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// Type describes one job type for code that handles types by name (the
// HTTP API, jobctl, the scheduler's config file, the mux, the e-mail
// templates, samples). [Types] lists them all; it is the one list of job
// types in the code.
type Type struct {
	// Name is the task type string, e.g. "send_release_email".
	Name string
	// Queue and Timeout are the type's processing defaults
	// (payloads.QueueOf, payloads.TimeoutOf).
	Queue   string
	Timeout time.Duration
	// Template is the e-mail template of a customer e-mail type (the file
	// email/templates/<Template>.tmpl); "" for other types.
	Template string
	// FromJSON decodes strictly (unknown fields are errors), validates and
	// builds the task from a JSON payload.
	FromJSON func(raw []byte, opts ...Option) (*Task, error)
	// Sample returns a typical valid payload of the type, for demos, load
	// runs and tests. seq (letters, digits, '-') makes its IDs unique.
	Sample func(seq string) Payload
	// MaskPayload is the payload for display: addresses masked, the
	// type's address fields whatever they hold (payloads.MaskPayload).
	MaskPayload func(raw []byte) json.RawMessage
}

// define is one registry entry: everything is read from payload type P,
// and sample makes a typical one.
func define[P Payload](sample func(seq string) P) Type {
	var zero P
	return Type{
		Name:    zero.TaskType(),
		Queue:   payloads.QueueOf(zero),
		Timeout: payloads.TimeoutOf(zero),
		FromJSON: func(raw []byte, opts ...Option) (*Task, error) {
			p, err := Decode[P](raw)
			if err != nil {
				return nil, err
			}
			return New(p, opts...)
		},
		Sample:      func(seq string) Payload { return sample(seq) },
		MaskPayload: func(raw []byte) json.RawMessage { return payloads.MaskPayload(zero, raw) },
	}
}

// withTemplate names the e-mail template of a customer e-mail type.
func (t Type) withTemplate(name string) Type {
	t.Template = name
	return t
}

// registry is the one list of job types, in a fixed order. Adding a type is
// one line here (and its payload, handler, adapter and template).
var registry = []Type{
	define(func(s string) payloads.SendReleaseEmail {
		return payloads.SendReleaseEmail{TransactionID: "esc-" + s, RecipientEmail: "seller-" + s + "@example.com", Amount: 125000, Currency: "USD", RecipientName: "Jane Seller"}
	}).withTemplate("release"),
	define(func(s string) payloads.SendRefundEmail {
		return payloads.SendRefundEmail{TransactionID: "esc-" + s, RecipientEmail: "buyer-" + s + "@example.com", Amount: 4999, Currency: "EUR", Reason: "The item did not arrive."}
	}).withTemplate("refund"),
	define(func(s string) payloads.SendDisputeEmail {
		return payloads.SendDisputeEmail{TransactionID: "esc-" + s, DisputeID: "dsp-" + s, RecipientEmail: "seller-" + s + "@example.com", Reason: "The buyer says the item is not as described."}
	}).withTemplate("dispute"),
	define(func(s string) payloads.SendPaymentConfirmedEmail {
		return payloads.SendPaymentConfirmedEmail{TransactionID: "esc-" + s, PaymentIntentID: samplePI(s), RecipientEmail: "buyer-" + s + "@example.com", Amount: 125000, Currency: "USD"}
	}).withTemplate("payment_confirmed"),
	define(func(s string) payloads.StripeCapturePayment {
		return payloads.StripeCapturePayment{TransactionID: "esc-" + s, PaymentIntentID: samplePI(s), AmountToCapture: 125000}
	}),
	define(func(s string) payloads.StripeRefundPayment {
		return payloads.StripeRefundPayment{TransactionID: "esc-" + s, PaymentIntentID: samplePI(s), Amount: 4999, RefundID: "rf-" + s, Reason: payloads.RefundRequestedByCustomer}
	}),
	define(func(s string) payloads.WebhookEscrowStatusChanged {
		return payloads.WebhookEscrowStatusChanged{EventID: "evt-" + s, PartnerID: "partner-acme", TransactionID: "esc-" + s,
			PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: sampleTime}
	}),
	define(func(s string) payloads.NotifyDisputeResolved {
		return payloads.NotifyDisputeResolved{DisputeID: "dsp-" + s, TransactionID: "esc-" + s, Resolution: payloads.ResolutionSplit,
			BuyerEmail: "buyer-" + s + "@example.com", SellerEmail: "seller-" + s + "@example.com", PartnerID: "partner-acme"}
	}),
	define(func(s string) payloads.AuditLogCreated {
		return payloads.AuditLogCreated{EventID: "evt-" + s, Actor: "user-48213", Action: "escrow.released", TransactionID: "esc-" + s, OccurredAt: sampleTime,
			Metadata: json.RawMessage(`{"ip":"203.0.113.7","userAgent":"escrow-web/4.2","amount":125000,"currency":"USD"}`)}
	}),
}

// The named constructors, one per registered type, for producers and godoc.

// NewSendReleaseEmailTask builds a send_release_email job.
func NewSendReleaseEmailTask(p payloads.SendReleaseEmail, opts ...Option) (*Task, error) {
	return New(p, opts...)
}

// NewSendRefundEmailTask builds a send_refund_email job.
func NewSendRefundEmailTask(p payloads.SendRefundEmail, opts ...Option) (*Task, error) {
	return New(p, opts...)
}

// NewSendDisputeEmailTask builds a send_dispute_email job.
func NewSendDisputeEmailTask(p payloads.SendDisputeEmail, opts ...Option) (*Task, error) {
	return New(p, opts...)
}

// NewSendPaymentConfirmedEmailTask builds a send_payment_confirmed_email job.
func NewSendPaymentConfirmedEmailTask(p payloads.SendPaymentConfirmedEmail, opts ...Option) (*Task, error) {
	return New(p, opts...)
}

// NewStripeCapturePaymentTask builds a stripe_capture_payment job.
func NewStripeCapturePaymentTask(p payloads.StripeCapturePayment, opts ...Option) (*Task, error) {
	return New(p, opts...)
}

// NewStripeRefundPaymentTask builds a stripe_refund_payment job.
func NewStripeRefundPaymentTask(p payloads.StripeRefundPayment, opts ...Option) (*Task, error) {
	return New(p, opts...)
}

// NewWebhookEscrowStatusChangedTask builds a webhook_escrow_status_changed job.
func NewWebhookEscrowStatusChangedTask(p payloads.WebhookEscrowStatusChanged, opts ...Option) (*Task, error) {
	return New(p, opts...)
}

// NewNotifyDisputeResolvedTask builds a notify_dispute_resolved job.
func NewNotifyDisputeResolvedTask(p payloads.NotifyDisputeResolved, opts ...Option) (*Task, error) {
	return New(p, opts...)
}

// NewAuditLogCreatedTask builds an audit_log_created job.
func NewAuditLogCreatedTask(p payloads.AuditLogCreated, opts ...Option) (*Task, error) {
	return New(p, opts...)
}

// sampleTime is the occurredAt of the samples.
const sampleTime = "2026-11-29T10:00:00Z"

// samplePI is a PaymentIntent ID unique to seq.
func samplePI(seq string) string { return "pi_3Mtw" + strings.ReplaceAll(seq, "-", "") }

// byName finds a Type by its name.
var byName = func() map[string]Type {
	m := make(map[string]Type, len(registry))
	for _, t := range registry {
		m[t.Name] = t
	}
	return m
}()

// Types lists every job type, in the registry's order.
func Types() []Type { return slices.Clone(registry) }

// ErrUnknownType is returned for a task type that is not in the registry.
var ErrUnknownType = errors.New("unknown job type")

// Lookup finds the Type of a task type name.
func Lookup(name string) (Type, error) {
	if t, ok := byName[name]; ok {
		return t, nil
	}
	names := make([]string, 0, len(registry))
	for _, t := range registry {
		names = append(names, t.Name)
	}
	return Type{}, fmt.Errorf("%w %q: want one of %s", ErrUnknownType, echoName(name), strings.Join(names, ", "))
}

// FromJSON builds a task of the named type from a JSON payload: strict
// decoding (unknown fields are errors), validation, the type's defaults.
func FromJSON(taskType string, raw []byte, opts ...Option) (*Task, error) {
	t, err := Lookup(taskType)
	if err != nil {
		return nil, err
	}
	return t.FromJSON(raw, opts...)
}

// Decode strictly decodes a JSON payload: unknown fields, wrong types and
// trailing data are a *payloads.ValidationError naming the field. It does
// not validate.
func Decode[P Payload](raw []byte) (P, error) {
	var p P
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, decodeError(p.TaskType(), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return p, &payloads.ValidationError{TaskType: p.TaskType(), Fields: []payloads.FieldError{{Field: "payload", Message: "must be a single JSON object"}}}
	}
	return p, nil
}

func decodeError(taskType string, err error) error {
	field, msg := "payload", "must be a JSON object"
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field, msg = echoName(te.Field), "must be a JSON "+jsonKind(te.Type.Kind().String())
		if field == "" {
			field = "payload"
		}
	case errors.As(err, &se):
		msg = fmt.Sprintf("is not valid JSON (offset %d)", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, msg = echoName(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)), "is not a field of "+taskType
	case errors.Is(err, io.EOF):
		msg = "is empty"
	}
	return &payloads.ValidationError{TaskType: taskType, Fields: []payloads.FieldError{{Field: field, Message: msg}}}
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"), strings.HasPrefix(goKind, "float"):
		return "number"
	case goKind == "string":
		return "string"
	case slices.Contains([]string{"slice", "array"}, goKind):
		return "array or object"
	}
	return "value of the right type"
}

// DecodeLenient decodes a JSON payload as a worker does: fields it does not
// know are ignored (a newer producer may add some), anything else that does
// not decode is a *payloads.ValidationError naming the field.
func DecodeLenient[P Payload](raw []byte) (P, error) {
	var p P
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, decodeError(p.TaskType(), err)
	}
	return p, nil
}
