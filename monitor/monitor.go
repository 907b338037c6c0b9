package monitor

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/escrowjobs/escrowjobs/console"
	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynqmon"
)

// Monitor is the asynqmon UI, the admin API, /healthz and /metrics as one
// http.Handler. Build it with New, serve Handler, Close it when done.
type Monitor struct {
	cfg       Config
	log       *slog.Logger
	client    *tasks.Client
	inspector *tasks.Inspector
	desk      *repair.Desk
	ui        *asynqmon.HTTPHandler
	console   *console.Console
	throttle  *loginThrottle
	handler   http.Handler
	closeOnce sync.Once
	closeErr  error
}

// New checks cfg and builds the monitor. Without credentials it returns an
// error naming each missing variable (MONITOR_USERNAME, MONITOR_PASSWORD,
// JOB_PROCESSOR_SECRET_TOKEN), unless cfg.LoopbackNoAuth is set. It does
// not need Redis to be up: /healthz reports that.
func New(cfg Config) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		cfg:       cfg,
		log:       log,
		client:    tasks.NewClient(cfg.RedisOpt, cfg.ClientOptions...),
		inspector: tasks.NewInspector(cfg.RedisOpt),
	}
	var ledger deadletter.Ledger = noLedger{}
	if cfg.DeadLetters != nil {
		ledger = cfg.DeadLetters
	}
	m.desk = repair.NewDesk(m.inspector, ledger)
	m.throttle = newLoginThrottle(cfg.LoginFailures, cfg.LoginWindow, log)
	m.ui = newUI(m)
	c, err := m.newConsole()
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	m.console = c
	m.handler = m.routes()
	return m, nil
}

// Handler serves every route of the monitor (see the package doc).
func (m *Monitor) Handler() http.Handler { return m.handler }

// Close closes the monitor's Redis connections. Close the http.Server that
// serves Handler first.
func (m *Monitor) Close() error {
	m.closeOnce.Do(func() {
		m.closeErr = errors.Join(m.ui.Close(), m.client.Close(), m.inspector.Close())
	})
	return m.closeErr
}

func (m *Monitor) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", methods(m.healthz, http.MethodGet, http.MethodHead))
	mux.Handle("/metrics", methods(m.metricsHandler().ServeHTTP, http.MethodGet, http.MethodHead))
	mux.Handle("/api/", requireBearer(m.cfg.APIToken, m.throttle, m.apiRoutes()))
	mux.Handle(RootPath+"/", m.uiRoutes())
	mux.Handle(console.Root+"/", m.consoleRoutes())
	mux.Handle("GET /{$}", http.RedirectHandler(RootPath+"/", http.StatusFound))
	mux.HandleFunc("/", notFound)

	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, codeForbidden, "cross-origin "+r.Method+" refused")
	}))
	var h http.Handler = csrf.Handler(mux)
	h = limitBody(h)
	if m.cfg.LoopbackNoAuth {
		h = loopbackOnly(m.log, h)
	}
	return m.logRequests(secureHeaders(h))
}

// limitBody answers 413 to a body announced larger than MaxBodyBytes and
// caps what a handler can read.
func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

// secureHeaders sets the headers every answer carries, whoever writes it
// (a 401 or 429 of the guards included): no framing (clickjacking), no
// content sniffing, no referrer.
func secureHeaders(h http.Handler) http.Handler {
	return withHeaders(h, "X-Content-Type-Options", "nosniff", "Referrer-Policy", "no-referrer",
		"X-Frame-Options", "DENY", "Content-Security-Policy", "frame-ancestors 'none'")
}

// withHeaders sets the headers kv (name, value, name, value, …) on every
// answer of h.
func withHeaders(h http.Handler, kv ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Set(kv[i], kv[i+1])
		}
		h.ServeHTTP(w, r)
	})
}

// logRequests logs one line per request: method, path (e-mail addresses
// masked, no query), status, duration, remote address. Never a header.
func (m *Monitor) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		level := slog.LevelDebug
		switch {
		case sw.status >= 500:
			level = slog.LevelError
		case sw.status == http.StatusUnauthorized, sw.status == http.StatusTooManyRequests:
			// a browser's first try before it sends credentials; a wrong
			// credential and a throttled client are logged, bounded, by
			// the throttle
		case sw.status >= 400:
			level = slog.LevelInfo
		}
		m.log.Log(r.Context(), level, "monitor: request", "method", r.Method, "path", maskPath(r.URL),
			"status", sw.status, "duration_ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
