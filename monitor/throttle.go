package monitor

import (
	"container/list"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the failed-login throttle.
const (
	// DefaultLoginFailures is how many wrong credentials one client may
	// send in a LoginWindow before it is answered 429.
	DefaultLoginFailures = 10
	// DefaultLoginWindow is the throttle's window.
	DefaultLoginWindow = time.Minute
	// MaxLoginFailureLines bounds the "failed login" log lines of all
	// clients together in one window; further failures are only counted
	// (in the next line of their client and in /metrics).
	MaxLoginFailureLines = 20
	// maxThrottledClients bounds the clients remembered at once; the
	// least recently seen is forgotten first.
	maxThrottledClients = 10000
)

// loginThrottle counts failed logins per client (remote IP; an IPv6
// client by its /64) in fixed windows, refuses a client that reached the
// limit until its window ends, and keeps its own log lines bounded.
type loginThrottle struct {
	max    int
	window time.Duration
	cap    int
	now    func() time.Time
	log    *slog.Logger

	failures  *prometheus.CounterVec
	throttled prometheus.Counter

	mu          sync.Mutex
	clients     map[netip.Prefix]*list.Element
	lru         *list.List // of *loginClient, most recent first
	linesStart  time.Time
	linesInRun  int
	lineDropped bool
}

type loginClient struct {
	key      netip.Prefix
	start    time.Time // of the client's current window
	failures int       // in the current window
	logged   bool      // a line was written in the current window
	unlogged int       // failures not yet in a log line
}

func newLoginThrottle(max int, window time.Duration, log *slog.Logger) *loginThrottle {
	if max <= 0 {
		max = DefaultLoginFailures
	}
	if window <= 0 {
		window = DefaultLoginWindow
	}
	return &loginThrottle{
		max: max, window: window, cap: maxThrottledClients, now: time.Now, log: log,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "escrowjobs_monitor_login_failures_total",
			Help: "Requests with wrong credentials, by surface (api: bearer token, ui: Basic auth).",
		}, []string{"surface"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "escrowjobs_monitor_login_throttled_total",
			Help: "Requests answered 429 because their client sent too many wrong credentials.",
		}),
		clients: map[netip.Prefix]*list.Element{},
		lru:     list.New(),
	}
}

// collectors are the throttle's metrics, for the monitor's registry.
func (t *loginThrottle) collectors() []prometheus.Collector {
	return []prometheus.Collector{t.failures, t.throttled}
}

// clientKey is the remote IP of r, an IPv6 address cut to its /64 (one
// host usually holds a whole /64).
func clientKey(r *http.Request) netip.Prefix {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	return netip.PrefixFrom(ip, 32)
}

// refuse answers 429 with Retry-After when r's client is throttled and
// reports whether it did.
func (t *loginThrottle) refuse(w http.ResponseWriter, r *http.Request) bool {
	key := clientKey(r)
	t.mu.Lock()
	var wait time.Duration
	if el, ok := t.clients[key]; ok {
		c := el.Value.(*loginClient)
		if end := c.start.Add(t.window); c.failures >= t.max && t.now().Before(end) {
			wait = end.Sub(t.now())
		}
	}
	t.mu.Unlock()
	if wait <= 0 {
		return false
	}
	t.throttled.Inc()
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, codeTooManyRequests, "too many failed logins from this address; retry in "+strconv.Itoa(secs)+" s")
	return true
}

// fail records a wrong credential from r's client on surface ("api" or
// "ui"). It writes at most one line per client per window (with the count
// of failures since its last line) and MaxLoginFailureLines lines per
// window in all.
func (t *loginThrottle) fail(r *http.Request, surface string) {
	t.failures.WithLabelValues(surface).Inc()
	key := clientKey(r)
	now := t.now()
	t.mu.Lock()
	c := t.client(key, now)
	if now.Sub(c.start) >= t.window {
		c.start, c.failures, c.logged = now, 0, false
	}
	c.failures++
	c.unlogged++
	var line, dropLine, reachedLimit bool
	count, failures := 0, c.failures
	if !c.logged {
		if line, dropLine = t.takeLine(now); line {
			count = c.unlogged
			c.logged, c.unlogged = true, 0
		}
	}
	if c.failures == t.max {
		var drop bool
		reachedLimit, drop = t.takeLine(now)
		dropLine = dropLine || drop
	}
	t.mu.Unlock()

	remote := key.String()
	if line {
		t.log.Warn("monitor: failed login", "surface", surface, "remote", remote, "method", r.Method,
			"path", maskPath(r.URL), "failures", count, "failures_in_window", failures,
			"window", t.window.String())
	}
	if dropLine {
		t.log.Warn("monitor: too many clients failing to log in; further lines this window are dropped (see escrowjobs_monitor_login_failures_total)",
			"max_lines", MaxLoginFailureLines, "window", t.window.String())
	}
	if reachedLimit {
		t.log.Warn("monitor: throttling a client: answering 429 until its window ends", "surface", surface, "remote", remote,
			"failures_in_window", failures, "window", t.window.String())
	}
}

// takeLine reports whether one more line fits in this window's budget,
// and whether the one line saying that lines are dropped is due instead.
// The caller holds mu.
func (t *loginThrottle) takeLine(now time.Time) (line, dropLine bool) {
	if now.Sub(t.linesStart) >= t.window {
		t.linesStart, t.linesInRun, t.lineDropped = now, 0, false
	}
	switch {
	case t.linesInRun < MaxLoginFailureLines:
		t.linesInRun++
		return true, false
	case !t.lineDropped:
		t.lineDropped = true
		return false, true
	}
	return false, false
}

// client finds or adds key's entry (the caller holds mu), forgetting the
// least recently seen client when the table is full.
func (t *loginThrottle) client(key netip.Prefix, now time.Time) *loginClient {
	if el, ok := t.clients[key]; ok {
		t.lru.MoveToFront(el)
		return el.Value.(*loginClient)
	}
	for t.lru.Len() >= t.cap {
		old := t.lru.Back()
		delete(t.clients, old.Value.(*loginClient).key)
		t.lru.Remove(old)
	}
	c := &loginClient{key: key, start: now}
	t.clients[key] = t.lru.PushFront(c)
	return c
}

// size is the number of clients remembered.
func (t *loginThrottle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
