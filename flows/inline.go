package flows

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/internal/asynqmsg"
	"github.com/escrowjobs/escrowjobs/internal/eventorder"
	"github.com/escrowjobs/escrowjobs/internal/historyindex"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A step that waits for others is enqueued, on one Redis (not a Cluster),
// by the very script that completes its last dependency: the flow's hash
// holds, beside its job (t:<step>), the job as asynq stores it (q:<step>,
// inlineJob), and the script writes asynq's task hash and pending list (or
// scheduled set), the escrow's history line, a partner event's sequence and
// order registration (internal/eventorder) and the wake-up, as
// tasks.Client.Enqueue does. One round trip marks the step done and
// enqueues its dependents, atomically: there is no moment at which a step
// is completed and its ready dependent not enqueued. On a Cluster the
// flow's hash and the queues are in different slots, so the script returns
// the jobs and the middleware enqueues them after it (a crash in between
// is repaired by the step's rerun).
//
// Flows started before q:<step> kept m:<step>, the same form without the
// partner events (those went through tasks.Client) and with the history in
// the escrow's older hash (escrowjobs:index:<tx>); the script still reads
// it. A new field name, not a new meaning of m:, so a script of the older
// form never enqueues a partner event without its sequence.

// historyHashPrefix is the escrow's older history hash (field job ID,
// value "<queue> <enqueued-at unix nanos>"), written by the m:<step> form
// of flows started before q:<step>; tasks.History still reads it.
const historyHashPrefix = "escrowjobs:index:"

// webhookType is the partner event, numbered per escrow when enqueued.
const webhookType = "webhook_escrow_status_changed"

// asynq's defaults for a job enqueued without MaxRetry and without a
// timeout or deadline (asynq.Client.Enqueue).
const (
	asynqDefaultRetry   = 25
	asynqDefaultTimeout = 30 * 60 // seconds
)

// inlineHead is the JSON line ahead of a q:<step> (or m:<step>) field's
// bytes: the keys the script writes and how it finishes the job's message.
// The message bytes follow it: rest (every field of asynq's TaskMessage
// but the payload and the headers added at enqueue), then the payload.
type inlineHead struct {
	TaskKey      string `json:"tk"`
	PendingKey   string `json:"lk"`
	ScheduledKey string `json:"zk"`
	ID           string `json:"id"`
	Queue        string `json:"q"`
	Wake         string `json:"wk"`
	History      string `json:"hk,omitempty"` // m:<step> only: the older history hash
	Lines        string `json:"hl,omitempty"` // the escrow's history index (historyindex.Key); "" for a job of no escrow
	LineSuffix   string `json:"hr,omitempty"` // historyindex.Suffix of the job's line
	HistoryTTLMS int64  `json:"httl,omitempty"`
	DelayMS      int64  `json:"dl,omitempty"`
	ProcessAtNS  string `json:"at,omitempty"` // tasks.ProcessAt, Unix nanoseconds
	ProcessAtS   int64  `json:"ats,omitempty"`
	ReadyAt      string `json:"ra,omitempty"` // the header to add (tasks.HeaderReadyAt), "" when the job has it
	Trace        bool   `json:"tp,omitempty"` // the job has its own trace context: none is added
	PayloadTagB  []int  `json:"pt"`           // protowire tag bytes of TaskMessage.payload
	HeadersTagB  []int  `json:"ht"`           // and of TaskMessage.headers
	RestLen      int    `json:"rl"`
	// A partner event of an escrow: its sequence counter, its partner's
	// order set and the member it registers there (eventorder.Member: ""
	// without a partner, nothing registered), the sequence its payload has
	// already ("" to take the next, which the script then adds to the
	// payload, split by eventorder.SplitForSequence), and the keys' expiry.
	Counter  string `json:"sc,omitempty"`
	Order    string `json:"so,omitempty"`
	Member   string `json:"sm,omitempty"`
	Given    string `json:"sg,omitempty"`
	Sep      string `json:"sp,omitempty"`
	SeqTTLMS int64  `json:"sttl,omitempty"`
}

// isCluster says whether rc is a Redis Cluster client: there the flow's
// hash and the queues are in different slots.
func isCluster(rc redis.UniversalClient) bool {
	_, ok := rc.(*redis.ClusterClient)
	return ok
}

// inlineJob is the q:<step> field of spec: the job as asynq would store
// it, less what is only known when it is enqueued. ok is false when the
// job cannot be enqueued by the script (asynq's message type is not
// registered, a partner event whose payload is not a JSON object): it is
// then enqueued by tasks.Client, as on a Cluster.
func inlineJob(spec taskSpec) (field []byte, ok bool) {
	mt, err := asynqmsg.Type()
	if err != nil {
		return nil, false
	}
	m := mt.New()
	fds := m.Descriptor().Fields()
	set := func(name string, v protoreflect.Value) bool {
		fd := fds.ByName(protoreflect.Name(name))
		if fd == nil {
			return false
		}
		m.Set(fd, v)
		return true
	}
	retry := spec.MaxRetry
	if retry < 0 {
		retry = asynqDefaultRetry
	}
	timeout := spec.TimeoutMS / 1000
	if spec.TimeoutMS <= 0 {
		timeout = asynqDefaultTimeout
	}
	h := inlineHead{TaskKey: asynqkey.Task(spec.Queue, spec.ID), PendingKey: asynqkey.Pending(spec.Queue),
		ScheduledKey: asynqkey.Scheduled(spec.Queue), ID: spec.ID, Queue: spec.Queue, Wake: tasks.WakeChannel(spec.Queue)}
	headers := make(map[string]string, len(spec.Headers))
	for k, v := range spec.Headers {
		headers[k] = v
	}
	if _, given := headers[tasks.HeaderReadyAt]; !given {
		h.ReadyAt = tasks.HeaderReadyAt
	}
	_, h.Trace = headers[tasks.HeaderTraceParent]
	ok = set("type", protoreflect.ValueOfString(spec.Type)) &&
		set("id", protoreflect.ValueOfString(spec.ID)) &&
		set("queue", protoreflect.ValueOfString(spec.Queue)) &&
		set("retry", protoreflect.ValueOfInt32(int32(retry))) &&
		set("timeout", protoreflect.ValueOfInt64(timeout)) &&
		set("retention", protoreflect.ValueOfInt64(spec.RetentionMS/1000))
	hfd, pfd := fds.ByName("headers"), fds.ByName("payload")
	if !ok || hfd == nil || pfd == nil || !hfd.IsMap() || pfd.Kind() != protoreflect.BytesKind {
		return nil, false
	}
	hm := m.Mutable(hfd).Map()
	for k, v := range headers {
		hm.Set(protoreflect.ValueOfString(k).MapKey(), protoreflect.ValueOfString(v))
	}
	rest, err := proto.Marshal(m.Interface())
	if err != nil {
		return nil, false
	}
	payload := []byte(spec.Payload)
	if tx := transactionOf(payload); tx != "" {
		typ, _, _ := strings.Cut(spec.ID, ":")
		typeQueue := ""
		if ty, err := tasks.Lookup(typ); err == nil {
			typeQueue = ty.Queue
		}
		h.Lines, h.LineSuffix = historyindex.Key(tx), historyindex.Suffix(spec.Queue, typeQueue)
		h.HistoryTTLMS = tasks.HistoryTTL.Milliseconds()
	}
	if spec.Type == webhookType {
		if payload, ok = sequencedHead(&h, payload); !ok {
			return nil, false
		}
	}
	switch {
	case spec.ProcessAt != nil:
		h.ProcessAtNS, h.ProcessAtS = strconv.FormatInt(spec.ProcessAt.UnixNano(), 10), spec.ProcessAt.Unix()
	case spec.DelayMS > 0:
		h.DelayMS = spec.DelayMS
	}
	h.PayloadTagB = tagBytes(pfd.Number())
	h.HeadersTagB = tagBytes(hfd.Number())
	h.RestLen = len(rest)
	head, err := json.Marshal(h)
	if err != nil {
		return nil, false
	}
	out := make([]byte, 0, len(head)+1+len(rest)+len(payload))
	out = append(append(append(append(out, head...), '\n'), rest...), payload...)
	return out, true
}

// sequencedHead fills h's sequence fields for a partner event, as
// tasks.Client does for one it enqueues, and returns the payload the
// script finishes: its body without the closing brace when the script adds
// the sequence. ok is false for a payload that is not a JSON object.
func sequencedHead(h *inlineHead, payload []byte) ([]byte, bool) {
	var p struct {
		TransactionID string `json:"transactionId"`
		PartnerID     string `json:"partnerId"`
		Sequence      int64  `json:"sequence"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return nil, false
	}
	if p.TransactionID == "" {
		return payload, true // no escrow, no sequence
	}
	h.Counter, h.SeqTTLMS = eventorder.CounterKey(p.TransactionID), eventorder.TTL.Milliseconds()
	h.Order, h.Member = eventorder.Key(p.TransactionID, p.PartnerID), eventorder.Member(p.PartnerID, h.ID)
	if p.Sequence > 0 {
		h.Given = strconv.FormatInt(p.Sequence, 10)
		return payload, true
	}
	body, sep, err := eventorder.SplitForSequence(payload)
	if err != nil {
		return nil, false
	}
	h.Sep = sep
	return body, true
}

func tagBytes(n protoreflect.FieldNumber) []int {
	b := protowire.AppendTag(nil, n, protowire.BytesType)
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// transactionOf is a JSON payload's transactionId ("" when none).
func transactionOf(payload []byte) string {
	var p struct {
		TransactionID string `json:"transactionId"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return ""
	}
	return p.TransactionID
}

// traceArgs are the trace headers (traceparent, tracestate) a job made
// ready now carries, as script arguments: name, value pairs.
func traceArgs(h map[string]string) []any {
	var out []any
	for _, k := range []string{tasks.HeaderTraceParent, tasks.HeaderTraceState} {
		if v := strings.TrimSpace(h[k]); v != "" {
			out = append(out, k, v)
		}
	}
	return out
}
