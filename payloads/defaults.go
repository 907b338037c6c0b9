package payloads

import "time"

// Queue names, in the order of their weights (critical 6, default 3, low 1).
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
)

// DefaultQueue is the queue of a payload that is not a [Queuer].
const DefaultQueue = QueueDefault

// DefaultTimeout is the processing timeout of a payload that is not a
// [Timeouter]: long enough for one call to a slow peer (an SMTP server, a
// mail API) with its own shorter timeout inside.
const DefaultTimeout = 30 * time.Second

// Payload is one job's data. It names its task type and its default dedupe
// key; the queue and timeout are optional ([Queuer], [Timeouter]).
type Payload interface {
	// TaskType is the asynq task type. It never changes after a deploy.
	TaskType() string
	// DedupeKey is the default dedupe key, before "<type>:" is prefixed.
	DedupeKey() string
}

// Queuer is a payload whose jobs go to another queue than DefaultQueue.
type Queuer interface {
	Queue() string
}

// Timeouter is a payload whose jobs have another processing timeout than
// DefaultTimeout.
type Timeouter interface {
	Timeout() time.Duration
}

// QueueOf is p's queue: its Queue method, else DefaultQueue.
func QueueOf(p Payload) string {
	if q, ok := p.(Queuer); ok {
		return q.Queue()
	}
	return DefaultQueue
}

// TimeoutOf is p's processing timeout: its Timeout method, else
// DefaultTimeout.
func TimeoutOf(p Payload) time.Duration {
	if t, ok := p.(Timeouter); ok {
		return t.Timeout()
	}
	return DefaultTimeout
}

// Per-family processing timeouts of the types that do not use
// DefaultTimeout. The webhook timeout is larger than the 10 s HTTP timeout
// so a slow partner is reported as a timeout, not a kill.
const (
	stripeTimeout  = 60 * time.Second
	webhookTimeout = 20 * time.Second
	notifyTimeout  = 15 * time.Second
	auditTimeout   = 15 * time.Second
)
