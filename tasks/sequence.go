package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/escrowjobs/escrowjobs/internal/eventorder"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
)

// SequenceTTL is how long an escrow's event counter outlives its last
// event. Every event refreshes it.
const SequenceTTL = eventorder.TTL

// webhookType is the job type whose payload carries a sequence.
var webhookType = payloads.WebhookEscrowStatusChanged{}.TaskType()

// Stored is a job rebuilt from storage (an outbox row, a flow step) under
// its job ID and queue, with the asynq options it is stored with. Enqueue
// sends it as it is, except that a partner event without a sequence gets
// one (see Client.Enqueue), which needs opts to rebuild the task.
func Stored(t *asynq.Task, id, queue string, opts ...asynq.Option) *Task {
	return &Task{Task: t, ID: id, Queue: queue, storedOpts: opts}
}

// sequenced is t with its partner event's sequence: a
// webhook_escrow_status_changed job whose payload has none gets the next
// number of its escrow's counter (INCR escrowjobs:seq:{<transactionId>},
// expiry refreshed to SequenceTTL) written into the payload, before asynq
// stores it. In the same script, one round trip, the event is registered
// in the sorted set of its escrow and partner
// (escrowjobs:seq:{<transactionId>}:<partnerId>, member the job ID, score
// the sequence, ZADD NX: a duplicate writes nothing), which the delivery
// to an "ordered" partner reads (package internal/eventorder). An event
// that has its sequence is registered with it (a dead letter rebuilt
// from the ledger is there already and keeps its place). Any other job
// and a Task that cannot be rebuilt (built by hand, neither by New nor by
// Stored) are t itself, at no cost.
//
// The number is taken when the job is enqueued, so the events of one
// escrow are numbered in the order their jobs reach Redis: direct
// enqueues in the order they are made, the outbox relay's rows in their
// commit order (it enqueues one escrow's events one after another, in row
// order), a flow's step when the flow enqueues it. A duplicate enqueue
// takes a number it never uses: the job asynq already holds keeps its own,
// and the numbers of an escrow only grow, with gaps.
func (c *Client) sequenced(ctx context.Context, t *Task) (*Task, error) {
	if t.Task == nil || t.Type() != webhookType || (t.opts == nil && t.storedOpts == nil) {
		return t, nil
	}
	var p struct {
		TransactionID string `json:"transactionId"`
		PartnerID     string `json:"partnerId"`
		Sequence      int64  `json:"sequence"`
	}
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return nil, fmt.Errorf("enqueue %s: read payload: %w", t.ID, err)
	}
	if p.TransactionID == "" {
		return t, nil
	}
	seq, err := eventorder.Register(ctx, c.rc, p.TransactionID, p.PartnerID, t.ID, p.Sequence)
	if err != nil {
		return nil, fmt.Errorf("enqueue %s: sequence of %s: %w", t.ID, p.TransactionID, err)
	}
	if p.Sequence > 0 {
		return t, nil
	}
	payload, err := withSequence(t.Payload(), seq)
	if err != nil {
		return nil, fmt.Errorf("enqueue %s: %w", t.ID, err)
	}
	s := *t
	if t.opts != nil {
		s.Task = asynq.NewTask(t.Type(), payload, t.opts...) // asynqTask adds the headers
	} else {
		s.Task = asynq.NewTaskWithHeaders(t.Type(), payload, t.Task.Headers(), t.storedOpts...)
	}
	return &s, nil
}

// withSequence is the JSON object payload with "sequence": n added; it
// must not have a non-zero sequence already (a zero one is dropped by
// omitempty, and a decoder keeps the last of two keys).
func withSequence(payload []byte, n int64) ([]byte, error) {
	b := bytes.TrimRight(payload, " \t\r\n")
	if len(b) < 2 || b[len(b)-1] != '}' {
		return nil, fmt.Errorf("payload is not a JSON object")
	}
	out := make([]byte, 0, len(b)+32)
	out = append(out, b[:len(b)-1]...)
	if len(bytes.TrimSpace(b[1:len(b)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"sequence":`...)
	out = strconv.AppendInt(out, n, 10)
	return append(out, '}'), nil
}
