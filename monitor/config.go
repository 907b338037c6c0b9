package monitor

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// MinTokenLength is the shortest API token accepted, in bytes, also in
// loopback mode when one is set (e.g. `openssl rand -hex 32` gives 64).
const MinTokenLength = 32

// MinPasswordLength is the shortest Basic-auth password accepted, in
// characters. Neither a password nor a token may start or end with
// whitespace (a copy-and-paste accident, or a password of blanks).
const MinPasswordLength = 12

// MaxBodyBytes bounds a request body; a larger one is answered 413.
const MaxBodyBytes = 64 << 10

// Config is what a Monitor needs. The comments name the environment
// variables cmd/monitor reads them from; New's errors name them too.
type Config struct {
	// RedisOpt is the Redis of the queues (REDIS_URL or REDIS_CLUSTER_ADDRS).
	RedisOpt asynq.RedisConnOpt
	// ClientOptions configure the client of POST /api/v1/jobs and requeues
	// (e.g. tasks.WaitReplicas from REDIS_WAIT_REPLICAS).
	ClientOptions []tasks.ClientOption
	// APIToken is the bearer token of /api/v1 (JOB_PROCESSOR_SECRET_TOKEN),
	// at least MinTokenLength characters.
	APIToken string
	// Username and Password guard /monitor/ with HTTP Basic auth
	// (MONITOR_USERNAME, MONITOR_PASSWORD).
	Username, Password string
	// ReadOnly refuses every mutating request of the UI (MONITOR_READ_ONLY).
	ReadOnly bool
	// LoopbackNoAuth serves without the credentials that are not set, to
	// loopback clients only (MONITOR_LOOPBACK_NO_AUTH, cmd/server -dev).
	// Credentials that are set are still required.
	LoopbackNoAuth bool
	// DeadLetters is the dead-letter ledger the API lists and repairs
	// (DEAD_LETTER_DATABASE_URL, else DEAD_LETTER_PATH): the same one the
	// workers record into. Without it the dead-letter routes answer 503.
	DeadLetters deadletter.Ledger
	// LedgerName says which ledger DeadLetters is ("PostgreSQL", "file
	// dead-letters.jsonl"): the start log line and the console's footer
	// show it. Empty: what the ledger says of itself (its String method).
	LedgerName string
	// LoginFailures is how many wrong credentials one client (remote IP)
	// may send in LoginWindow before it is answered 429 until the window
	// ends; 0 is DefaultLoginFailures.
	LoginFailures int
	// LoginWindow is the throttle's window; 0 is DefaultLoginWindow.
	LoginWindow time.Duration
	// Logger gets one line per request and every failure; nil discards.
	Logger *slog.Logger
}

// Validate returns every problem of c at once, each naming its variable.
// New calls it; a binary can call it first to report configuration errors
// together with its own.
func (c Config) Validate() error {
	var errs []error
	if c.RedisOpt == nil {
		errs = append(errs, errors.New("monitor: Config.RedisOpt is required (REDIS_URL or REDIS_CLUSTER_ADDRS)"))
	}
	hint := "; or serve loopback only without it (-loopback-no-auth or MONITOR_LOOPBACK_NO_AUTH=true)"
	if c.LoopbackNoAuth {
		hint = ""
	}
	switch {
	case c.Username == "" && c.Password == "" && c.LoopbackNoAuth:
		// the UI is open to loopback clients
	case c.Username == "":
		errs = append(errs, fmt.Errorf("monitor: MONITOR_USERNAME is not set (the Basic-auth user of /monitor/)%s", hint))
	case strings.ContainsAny(c.Username, ":\r\n"):
		errs = append(errs, errors.New("monitor: MONITOR_USERNAME must not contain ':' or line breaks"))
	case strings.TrimSpace(c.Username) != c.Username:
		errs = append(errs, errors.New("monitor: MONITOR_USERNAME must not start or end with whitespace"))
	}
	switch {
	case c.Username == "" && c.Password == "" && c.LoopbackNoAuth:
	case c.Password == "":
		errs = append(errs, fmt.Errorf("monitor: MONITOR_PASSWORD is not set (the Basic-auth password of /monitor/)%s", hint))
	case strings.TrimSpace(c.Password) != c.Password:
		errs = append(errs, errors.New("monitor: MONITOR_PASSWORD must not start or end with whitespace (nor be whitespace only)"))
	case utf8.RuneCountInString(c.Password) < MinPasswordLength:
		errs = append(errs, fmt.Errorf("monitor: MONITOR_PASSWORD is too short: want at least %d characters", MinPasswordLength))
	}
	switch {
	case c.APIToken == "" && c.LoopbackNoAuth:
		// the API is open to loopback clients
	case c.APIToken == "":
		errs = append(errs, fmt.Errorf("monitor: JOB_PROCESSOR_SECRET_TOKEN is not set (the bearer token of /api/v1, at least %d characters, e.g. openssl rand -hex 32)%s", MinTokenLength, hint))
	case strings.ContainsFunc(c.APIToken, unicode.IsSpace):
		errs = append(errs, errors.New("monitor: JOB_PROCESSOR_SECRET_TOKEN must not contain whitespace (nor be whitespace only)"))
	case len(c.APIToken) < MinTokenLength:
		errs = append(errs, fmt.Errorf("monitor: JOB_PROCESSOR_SECRET_TOKEN is too short: want at least %d bytes (e.g. openssl rand -hex 32)", MinTokenLength))
	}
	if c.LoginFailures < 0 || c.LoginWindow < 0 {
		errs = append(errs, errors.New("monitor: Config.LoginFailures and Config.LoginWindow must not be negative"))
	}
	return errors.Join(errs...)
}
