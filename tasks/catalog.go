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

// Kind describes one job type for code that handles types by name (the
// HTTP API, jobctl, the scheduler's config file).
type Kind struct {
	Type  string
	Queue string
	// Timeout bounds one attempt.
	Timeout time.Duration
	// FromJSON decodes, validates and builds the task from a JSON payload.
	FromJSON func(raw []byte, opts ...Option) (*Task, error)
}

func kind[P Payload]() Kind {
	var zero P
	return Kind{
		Type:    zero.TaskType(),
		Queue:   zero.Queue(),
		Timeout: zero.Timeout(),
		FromJSON: func(raw []byte, opts ...Option) (*Task, error) {
			p, err := Decode[P](raw)
			if err != nil {
				return nil, err
			}
			return New(p, opts...)
		},
	}
}

// Kinds lists the nine job types, in the order of the catalog.
func Kinds() []Kind {
	return []Kind{
		kind[payloads.SendReleaseEmail](),
		kind[payloads.SendRefundEmail](),
		kind[payloads.SendDisputeEmail](),
		kind[payloads.SendPaymentConfirmedEmail](),
		kind[payloads.StripeCapturePayment](),
		kind[payloads.StripeRefundPayment](),
		kind[payloads.WebhookEscrowStatusChanged](),
		kind[payloads.NotifyDisputeResolved](),
		kind[payloads.AuditLogCreated](),
	}
}

// ErrUnknownType is returned for a task type that is not one of the nine.
var ErrUnknownType = errors.New("unknown job type")

// Lookup finds the Kind of a task type.
func Lookup(taskType string) (Kind, error) {
	for _, k := range Kinds() {
		if k.Type == taskType {
			return k, nil
		}
	}
	names := make([]string, 0, 9)
	for _, k := range Kinds() {
		names = append(names, k.Type)
	}
	return Kind{}, fmt.Errorf("%w %q: want one of %s", ErrUnknownType, taskType, strings.Join(names, ", "))
}

// FromJSON builds a task of the named type from a JSON payload: strict
// decoding (unknown fields are errors), validation, the type's defaults.
func FromJSON(taskType string, raw []byte, opts ...Option) (*Task, error) {
	k, err := Lookup(taskType)
	if err != nil {
		return nil, err
	}
	return k.FromJSON(raw, opts...)
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
		field, msg = te.Field, "must be a JSON "+jsonKind(te.Type.Kind().String())
		if field == "" {
			field = "payload"
		}
	case errors.As(err, &se):
		msg = fmt.Sprintf("is not valid JSON (offset %d)", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, msg = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "is not a field of "+taskType
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
