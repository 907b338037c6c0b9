package flows

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// A step that waits for others is enqueued, on one Redis (not a Cluster),
// by the very script that completes its last dependency: the flow's hash
// holds, beside its job (t:<step>), the job as asynq stores it (m:<step>,
// inlineJob), and the script writes asynq's task hash and pending list (or
// scheduled set), the escrow's history field and the wake-up as
// tasks.Client.Enqueue does. A partner event is left to tasks.Client: its
// escrow's sequence and order are that package's (the middleware enqueues
// it after the script, as on a Cluster). One round trip
// marks the step done and enqueues its dependents, atomically: there is no
// moment at which a step is completed and its ready dependent not
// enqueued. On a Cluster the flow's hash and the queues are in different
// slots, so the script returns the jobs and the middleware enqueues them
// after it (a crash in between is repaired by the step's rerun).

// historyKeyPrefix is the escrow's history index of package tasks
// (tasks.History reads it): field job ID, value "<queue> <enqueued-at
// unix nanos>", expiry tasks.HistoryTTL, never shortened.
const historyKeyPrefix = "escrowjobs:index:"

// webhookType is the partner event: tasks.Client gives it its escrow's
// sequence when it is enqueued, so the script does not enqueue it.
const webhookType = "webhook_escrow_status_changed"

// asynq's defaults for a job enqueued without MaxRetry and without a
// timeout or deadline (asynq.Client.Enqueue).
const (
	asynqDefaultRetry   = 25
	asynqDefaultTimeout = 30 * 60 // seconds
)

// inlineHead is the JSON line ahead of an m:<step> field's bytes: the
// keys the script writes and how it finishes the job's message. The
// message bytes follow it: rest (every field of asynq's TaskMessage but
// the payload and the headers added at enqueue), then the payload.
type inlineHead struct {
	TaskKey      string `json:"tk"`
	PendingKey   string `json:"lk"`
	ScheduledKey string `json:"zk"`
	ID           string `json:"id"`
	Queue        string `json:"q"`
	Wake         string `json:"wk"`
	History      string `json:"hk,omitempty"` // "" for a job of no escrow
	HistoryTTLMS int64  `json:"httl,omitempty"`
	DelayMS      int64  `json:"dl,omitempty"`
	ProcessAtNS  string `json:"at,omitempty"` // tasks.ProcessAt, Unix nanoseconds
	ProcessAtS   int64  `json:"ats,omitempty"`
	ReadyAt      string `json:"ra,omitempty"` // the header to add (tasks.HeaderReadyAt), "" when the job has it
	Trace        bool   `json:"tp,omitempty"` // the job has its own trace context: none is added
	PayloadTagB  []int  `json:"pt"`           // protowire tag bytes of TaskMessage.payload
	HeadersTagB  []int  `json:"ht"`           // and of TaskMessage.headers
	RestLen      int    `json:"rl"`
}

// isCluster says whether rc is a Redis Cluster client: there the flow's
// hash and the queues are in different slots.
func isCluster(rc redis.UniversalClient) bool {
	_, ok := rc.(*redis.ClusterClient)
	return ok
}

// inlineJob is the m:<step> field of spec: the job as asynq would store
// it, less what is only known when it is enqueued. ok is false when the
// job cannot be enqueued by the script (asynq's message type is not
// registered, a partner event): it is then enqueued by tasks.Client, as
// on a Cluster.
func inlineJob(spec taskSpec) (field []byte, ok bool) {
	if spec.Type == webhookType {
		return nil, false
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName("asynq.TaskMessage")
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
		h.History, h.HistoryTTLMS = historyKeyPrefix+tx, tasks.HistoryTTL.Milliseconds()
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
