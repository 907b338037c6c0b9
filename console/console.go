package console

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Root is where the monitor mounts the console.
const Root = "/console"

// DefaultActor is the actor recorded for a request without a Basic-auth
// user (a monitor serving loopback clients without credentials).
const DefaultActor = "monitor-ui"

// DefaultFlowNames are the flow names an escrow page looks up (the escrow
// transitions: a flow's ID is "<name>:<transactionId>").
func DefaultFlowNames() []string { return []string{"fund", "release", "refund", "dispute", "resolve"} }

// pageSize is how many dead letters or flows one page lists.
const pageSize = 50

// maxReasonLength bounds a reason, as the API does.
const maxReasonLength = 500

// DeadLetters is the ledger and its repairs (repair.Desk, with the
// ledger's History).
type DeadLetters interface {
	List(ctx context.Context, f deadletter.Filter, cursor string, limit int) (deadletter.Page, error)
	// Get returns the job's most recent dead letter.
	Get(ctx context.Context, id string) (deadletter.Entry, error)
	// History returns every dead letter of the job, newest first.
	History(ctx context.Context, id string) ([]deadletter.Entry, error)
	Requeue(ctx context.Context, id, actor, reason string) (deadletter.Entry, error)
	Discard(ctx context.Context, id, actor, reason string) (deadletter.Entry, error)
	RequeueMatching(ctx context.Context, f deadletter.Filter, dryRun bool, actor, reason string) (repair.Bulk, error)
}

// Flows reads flows (flows.Store).
type Flows interface {
	List(ctx context.Context, f flows.Filter, cursor string, limit int) (flows.Page, error)
	Status(ctx context.Context, id string) (flows.View, error)
}

// Escrows tells one escrow's story: every job of it (tasks.Inspector's
// History over the ledger).
type Escrows interface {
	History(ctx context.Context, transactionID string) ([]tasks.HistoryJob, error)
}

// Jobs finds a job in asynq (tasks.Inspector), for its queue and state.
type Jobs interface {
	Status(ctx context.Context, id string) (tasks.Job, error)
}

// Partners is the partners' delivery state and its two switches.
type Partners interface {
	Statuses(ctx context.Context) ([]partner.Status, error)
	// Enable turns the partner back on and redelivers its waiting dead
	// letters; it returns how many.
	Enable(ctx context.Context, id, actor string) (int, error)
	// Disable makes the partner's deliveries dead letters until enabled.
	Disable(ctx context.Context, id, actor, reason string) error
}

// OrderWaits is implemented by a Partners that can count, for the open
// dead letter of an event to an "ordered" partner, the later events of
// its escrow that wait for it; the dead letter's page then says so.
type OrderWaits interface {
	WaitingBehind(ctx context.Context, e deadletter.Entry) int
}

// Config is what a Console reads and acts on. A nil store makes its pages
// answer 503.
type Config struct {
	DeadLetters DeadLetters
	Flows       Flows
	Escrows     Escrows
	Jobs        Jobs
	Partners    Partners
	// ReadOnly renders no action and refuses every POST (403).
	ReadOnly bool
	// Ledger names the dead-letter ledger (e.g. "PostgreSQL", "file
	// /var/lib/escrowjobs/dead-letters.jsonl"); the footer shows it.
	Ledger string
	// MonitorPath is where asynqmon is served ("/monitor"): the console
	// links to its page of each job.
	MonitorPath string
	// FlowNames are the flow names an escrow page looks up
	// (DefaultFlowNames() when empty).
	FlowNames []string
	// CSRFKey signs the forms' tokens; empty: a random key of this
	// Console (tokens do not survive a restart).
	CSRFKey []byte
	// Logger gets one line per action; nil discards.
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

//go:embed templates/*.html static/*
var assets embed.FS

// Console serves the pages and actions under Root.
type Console struct {
	cfg   Config
	log   *slog.Logger
	key   []byte
	pages map[string]*template.Template
	css   []byte
	mux   *http.ServeMux
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	c := &Console{cfg: cfg, log: cfg.Logger, key: cfg.CSRFKey}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.cfg.Now == nil {
		c.cfg.Now = time.Now
	}
	if c.cfg.MonitorPath == "" {
		c.cfg.MonitorPath = "/monitor"
	}
	if len(c.cfg.FlowNames) == 0 {
		c.cfg.FlowNames = DefaultFlowNames()
	}
	if len(c.key) == 0 {
		c.key = make([]byte, 32)
		if _, err := rand.Read(c.key); err != nil {
			return nil, fmt.Errorf("console: csrf key: %w", err)
		}
	}
	var err error
	if c.pages, err = parsePages(c.cfg.MonitorPath); err != nil {
		return nil, err
	}
	if c.css, err = fs.ReadFile(assets, "static/console.css"); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c.mux = c.routes()
	return c, nil
}

// ServeHTTP serves Root/….
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET "+Root+"/{$}", http.RedirectHandler(Root+"/dead-letters", http.StatusFound))
	mux.HandleFunc("GET "+Root+"/static/console.css", c.serveCSS)
	mux.HandleFunc("GET "+Root+"/dead-letters", c.deadLetters)
	mux.HandleFunc("GET "+Root+"/dead-letters/{id...}", c.deadLetter)
	mux.HandleFunc("GET "+Root+"/flows", c.flowList)
	mux.HandleFunc("GET "+Root+"/flows/{id...}", c.flow)
	mux.HandleFunc("GET "+Root+"/escrows", c.escrowSearch)
	mux.HandleFunc("GET "+Root+"/escrows/{id...}", c.escrow)
	mux.HandleFunc("GET "+Root+"/partners", c.partners)
	mux.HandleFunc("POST "+Root+"/actions/requeue", c.action(c.requeue))
	mux.HandleFunc("POST "+Root+"/actions/discard", c.action(c.discard))
	mux.HandleFunc("POST "+Root+"/actions/bulk-requeue", c.action(c.bulkRequeue))
	mux.HandleFunc("POST "+Root+"/actions/partner-enable", c.action(c.partnerEnable))
	mux.HandleFunc("POST "+Root+"/actions/partner-disable", c.action(c.partnerDisable))
	mux.HandleFunc(Root+"/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.fail(w, r, http.StatusMethodNotAllowed, "Method not allowed", r.Method+" is not allowed here")
			return
		}
		c.fail(w, r, http.StatusNotFound, "Not found", "The console has no page "+r.URL.Path)
	})
	return mux
}

func (c *Console) serveCSS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(c.css)
}

// actor is who is acting: the Basic-auth user, or DefaultActor.
func actor(r *http.Request) string {
	if u, _, ok := r.BasicAuth(); ok && u != "" {
		return u
	}
	return DefaultActor
}

// action guards a POST: read-only refuses it, the form must parse and
// carry the user's CSRF token; only then does h run.
func (c *Console) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.cfg.ReadOnly {
			c.fail(w, r, http.StatusForbidden, "Read-only", "The monitor is read-only (MONITOR_READ_ONLY=true): nothing can be changed here.")
			return
		}
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
			return
		}
		if !c.validToken(actor(r), r.PostForm.Get("csrf")) {
			c.log.Warn("console: refused a form without a valid CSRF token", "path", r.URL.Path, "actor", actor(r), "remote", r.RemoteAddr)
			c.fail(w, r, http.StatusForbidden, "Forbidden", "The form's security token is missing or wrong (an old page, or a form sent from elsewhere). Nothing was changed; reload the page and try again.")
			return
		}
		h(w, r)
	}
}

// reasonOf reads the form's reason: one line of at most maxReasonLength.
func reasonOf(r *http.Request, required bool) (string, string) {
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	switch {
	case required && reason == "":
		return "", "A reason is required."
	case len(reason) > maxReasonLength || strings.ContainsAny(reason, "\r\n"):
		return "", fmt.Sprintf("The reason must be one line of at most %d characters.", maxReasonLength)
	}
	return reason, ""
}

// flashCookie carries the message of an action to the page it redirects to.
const flashCookie = "console_flash"

// redirect answers 303 to path with a flash message.
func (c *Console) redirect(w http.ResponseWriter, r *http.Request, path, kind, msg string) {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(kind + ":" + msg), Path: Root + "/",
		MaxAge: 60, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// takeFlash reads and clears the flash message.
func takeFlash(w http.ResponseWriter, r *http.Request) (kind, msg string) {
	ck, err := r.Cookie(flashCookie)
	if err != nil {
		return "", ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: Root + "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	v, err := url.QueryUnescape(ck.Value)
	if err != nil {
		return "", ""
	}
	kind, msg, ok := strings.Cut(v, ":")
	if !ok || (kind != "ok" && kind != "error") {
		return "", ""
	}
	return kind, truncate(msg, 2000)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// errUnavailable is the error of a page whose store the monitor did not
// give.
var errUnavailable = errors.New("not configured")

// storeError answers the error of a store: 404, 409, 400 or 503.
func (c *Console) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, deadletter.ErrNotFound), errors.Is(err, tasks.ErrNotFound), errors.Is(err, flows.ErrNotFound):
		c.fail(w, r, http.StatusNotFound, "Not found", what+": not found.")
	case errors.Is(err, deadletter.ErrNotOpen), errors.Is(err, repair.ErrConflict), errors.Is(err, repair.ErrCannotRebuild), errors.Is(err, repair.ErrStillActive):
		c.fail(w, r, http.StatusConflict, "Conflict", what+": "+maskErr(err)+". Nothing was changed by this request.")
	case errors.Is(err, deadletter.ErrBadCursor), errors.Is(err, flows.ErrBadCursor):
		c.fail(w, r, http.StatusBadRequest, "Bad request", "The page cursor is not one the console handed out.")
	case errors.Is(err, repair.ErrReasonRequired):
		c.fail(w, r, http.StatusBadRequest, "Bad request", "A reason is required.")
	case errors.Is(err, errUnavailable):
		c.fail(w, r, http.StatusServiceUnavailable, "Unavailable", what+": this monitor was started without it.")
	default:
		c.log.Error("console: "+what, "err", maskErr(err))
		c.fail(w, r, http.StatusServiceUnavailable, "Unavailable", what+": the job store (Redis) or the dead-letter ledger did not answer; nothing was lost, try again: "+maskErr(err))
	}
}
