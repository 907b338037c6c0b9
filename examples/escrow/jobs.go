package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// actor is who the audit log says made the change.
const actor = "escrow-api"

// eventID is the stable ID of one escrow's event (its webhook and audit
// record): the same transition always yields the same ID, and it fits the
// 64-character identifier limit whatever the escrow ID's length.
func eventID(escrowID, action string) string {
	sum := sha256.Sum256([]byte(escrowID + "/" + action))
	return "ev-" + hex.EncodeToString(sum[:20])
}

// jobs collects the jobs of one transition, checked by their typed
// constructors, and the field errors of the ones that failed validation,
// renamed to the request's field names.
type jobs struct {
	tasks  []*tasks.Task
	fields []payloads.FieldError
	err    error // an error that is not about a field
}

// add keeps t, or turns err's field errors into request field errors:
// rename maps a payload field (transactionId) to the request's (id); a
// payload field missing from rename is named as it is.
func (j *jobs) add(t *tasks.Task, err error, rename map[string]string) {
	if err == nil {
		j.tasks = append(j.tasks, t)
		return
	}
	var ve *payloads.ValidationError
	if !errors.As(err, &ve) {
		j.err = errors.Join(j.err, err)
		return
	}
	for _, f := range ve.Fields {
		if to, ok := rename[f.Field]; ok {
			f.Field = to
		}
		j.field(f)
	}
}

// field adds a request field error, once per field.
func (j *jobs) field(f payloads.FieldError) {
	for _, have := range j.fields {
		if have.Field == f.Field {
			return
		}
	}
	j.fields = append(j.fields, f)
}

// checkAs validates a payload without keeping its task: for a field the
// request carries now but a later job uses (the seller's address at
// creation).
func (j *jobs) checkAs(rename map[string]string) func(*tasks.Task, error) {
	return func(_ *tasks.Task, err error) {
		if err != nil {
			j.add(nil, err, rename)
		}
	}
}

// check is nil, or a *requestError naming the bad fields.
func (j *jobs) check() error {
	if len(j.fields) > 0 {
		return &requestError{Fields: j.fields}
	}
	return j.err
}

var idField = map[string]string{"transactionId": "id"}
