package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/internal/asynqmsg"
	"github.com/escrowjobs/escrowjobs/internal/eventorder"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
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
// stores it, and the event is registered in the sorted set of its escrow
// and partner (escrowjobs:seq:{<transactionId>}:<partnerId>, member the
// job ID, score the sequence, ZADD NX: a duplicate writes nothing), which
// the delivery to an "ordered" partner reads (package internal/eventorder).
// An event that has its sequence is registered with it (a dead letter
// rebuilt from the ledger is there already and keeps its place). Any other
// job and a Task that cannot be rebuilt (built by hand, neither by New nor
// by Stored) are t itself, at no cost.
//
// On one Redis the number is taken by the enqueue script itself (wake.go),
// in the enqueue's round trip, and only for a job it stores: sequenced
// returns the seqEntry that says how, and t as it is. On a Cluster the
// escrow's keys are in another slot than the queue's, so the number is
// taken first, in a round trip of its own, and t is rebuilt with it (a
// duplicate enqueue then takes a number it never uses).
//
// The number is taken when the job is enqueued, so the events of one
// escrow are numbered in the order their jobs reach Redis: direct
// enqueues in the order they are made, the outbox relay's rows in their
// commit order (it enqueues one escrow's events one after another, in row
// order), a flow's step when the flow enqueues it. The numbers of an
// escrow only grow; they can skip.
func (c *Client) sequenced(ctx context.Context, t *Task) (*Task, *seqEntry, error) {
	if t.Task == nil || t.Type() != webhookType || (t.opts == nil && t.storedOpts == nil) {
		return t, nil, nil
	}
	var p struct {
		TransactionID string `json:"transactionId"`
		PartnerID     string `json:"partnerId"`
		Sequence      int64  `json:"sequence"`
	}
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return nil, nil, fmt.Errorf("enqueue %s: read payload: %w", t.ID, err)
	}
	if p.TransactionID == "" {
		return t, nil, nil
	}
	if !c.sharded {
		e := &seqEntry{id: t.ID, tx: p.TransactionID, partner: p.PartnerID}
		if p.Sequence > 0 {
			e.given = strconv.FormatInt(p.Sequence, 10)
		}
		return t, e, nil
	}
	seq, err := eventorder.Register(ctx, c.rc, p.TransactionID, p.PartnerID, t.ID, p.Sequence)
	if err != nil {
		return nil, nil, fmt.Errorf("enqueue %s: sequence of %s: %w", t.ID, p.TransactionID, err)
	}
	if p.Sequence > 0 {
		return t, nil, nil
	}
	body, sep, err := eventorder.SplitForSequence(t.Payload())
	if err != nil {
		return nil, nil, fmt.Errorf("enqueue %s: %w", t.ID, err)
	}
	payload := eventorder.WithSequence(body, sep, seq)
	s := *t
	if t.opts != nil {
		s.Task = asynq.NewTask(t.Type(), payload, t.opts...) // asynqTask adds the headers
	} else {
		s.Task = asynq.NewTaskWithHeaders(t.Type(), payload, t.Task.Headers(), t.storedOpts...)
	}
	return &s, nil, nil
}

// seqEntry is a partner event's sequence for the enqueue script of
// wake.go (one Redis), handed to it through the context like indexEntry.
type seqEntry struct {
	id, tx, partner string
	given           string // the payload's own sequence; "" takes the next
	taken           bool   // taken: by the enqueue script, or by takeApart
	msg             []byte // takeApart's message with the sequence (nil: unchanged)
}

// keys are the escrow's sequence counter and its partner's order set, and
// the member the event registers there (eventorder.Member).
func (e *seqEntry) keys() (counter, set, member string) {
	return eventorder.CounterKey(e.tx), eventorder.Key(e.tx, e.partner), eventorder.Member(e.partner, e.id)
}

type seqEntryKey struct{}

// takeApart takes the sequence in a round trip of its own and writes it
// into asynq's message in args (an enqueue script the wake publisher does
// not recognise, so not enqueueScript). It takes it once: the same script
// sent again (EVAL after NOSCRIPT) gets the same message.
func (e *seqEntry) takeApart(ctx context.Context, rc redis.Scripter, args []any) error {
	_, argv, ok := asynqkey.Script(args, 2, 1)
	if !ok {
		return fmt.Errorf("enqueue %s: sequence of %s: asynq's message not found", e.id, e.tx)
	}
	if !e.taken {
		var given int64
		if e.given != "" {
			given, _ = strconv.ParseInt(e.given, 10, 64)
		}
		n, err := eventorder.Register(ctx, rc, e.tx, e.partner, e.id, given)
		if err != nil {
			return fmt.Errorf("enqueue %s: sequence of %s: %w", e.id, e.tx, err)
		}
		if given == 0 {
			rest, body, sep, tag, err := splitPayload(argv[0])
			if err != nil {
				return fmt.Errorf("enqueue %s: %w", e.id, err)
			}
			e.msg = protowire.AppendBytes(append([]byte(rest), tag...), eventorder.WithSequence([]byte(body), sep, n))
		}
		e.taken = true
	}
	if e.msg != nil {
		argv[0] = e.msg
	}
	return nil
}

// splitPayload takes asynq's encoded message (a TaskMessage) apart for the
// enqueue script to add a sequence to its payload: rest is every field but
// the payload, body the payload without its closing brace, sep "," when the
// object has members, tag the payload field's tag bytes.
func splitPayload(v any) (rest, body, sep, tag string, err error) {
	var msg []byte
	switch m := v.(type) {
	case []byte:
		msg = m
	case string:
		msg = []byte(m)
	default:
		return "", "", "", "", fmt.Errorf("sequence: asynq's message is a %T", v)
	}
	num, err := asynqmsg.PayloadField()
	if err != nil {
		return "", "", "", "", fmt.Errorf("sequence: %w", err)
	}
	var payload []byte
	found := false
	out := make([]byte, 0, len(msg))
	for b := msg; len(b) > 0; {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return "", "", "", "", fmt.Errorf("sequence: asynq's message: %w", protowire.ParseError(l))
		}
		m := protowire.ConsumeFieldValue(n, typ, b[l:])
		if m < 0 {
			return "", "", "", "", fmt.Errorf("sequence: asynq's message: %w", protowire.ParseError(m))
		}
		if n == num && typ == protowire.BytesType {
			payload, _ = protowire.ConsumeBytes(b[l : l+m])
			found = true
		} else {
			out = append(out, b[:l+m]...)
		}
		b = b[l+m:]
	}
	if !found {
		return "", "", "", "", fmt.Errorf("sequence: asynq's message has no payload")
	}
	b, sep, err := eventorder.SplitForSequence(payload)
	if err != nil {
		return "", "", "", "", fmt.Errorf("sequence: %w", err)
	}
	return string(out), string(b), sep, string(protowire.AppendTag(nil, num, protowire.BytesType)), nil
}
