package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
)

// SequenceTTL is how long an escrow's event counter outlives its last
// event. Every event refreshes it.
const SequenceTTL = 90 * 24 * time.Hour

// webhookType is the job type whose payload carries a sequence.
var webhookType = payloads.WebhookEscrowStatusChanged{}.TaskType()

// sequenceKey is the counter of an escrow's partner events. The braces
// make it a hash tag: INCR and PEXPIRE of one escrow go to one slot.
func sequenceKey(transactionID string) string { return "escrowjobs:seq:{" + transactionID + "}" }

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
// expiry refreshed to SequenceTTL, one round trip) written into the
// payload, before asynq stores it. Any other job, an event that has its
// sequence and a Task that cannot be rebuilt (built by hand, neither by
// New nor by Stored) are t itself, at no cost.
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
		Sequence      int64  `json:"sequence"`
	}
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return nil, fmt.Errorf("enqueue %s: read payload: %w", t.ID, err)
	}
	if p.Sequence > 0 || p.TransactionID == "" {
		return t, nil
	}
	key := sequenceKey(p.TransactionID)
	pipe := c.rc.Pipeline()
	incr := pipe.Incr(ctx, key)
	pipe.PExpire(ctx, key, SequenceTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("enqueue %s: sequence of %s: %w", t.ID, p.TransactionID, err)
	}
	payload, err := withSequence(t.Payload(), incr.Val())
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
