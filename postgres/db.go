package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// openTimeout bounds Open's first connection when ctx has no deadline.
const openTimeout = 10 * time.Second

// DB is a pool of connections to one PostgreSQL database.
type DB struct {
	pool *pgxpool.Pool
}

// Open connects to the database at dbURL (postgres://user:pass@host:port/db
// or a key=value DSN) and pings it; while the server answers that it is
// starting up (a restart, a crash recovery), Open tries again until ctx's
// deadline. The error names what failed and shows the URL with its
// password replaced by "xxxxx".
func Open(ctx context.Context, dbURL string) (*DB, error) {
	if strings.TrimSpace(dbURL) == "" {
		return nil, errors.New("postgres: empty database URL")
	}
	safe := Redact(dbURL)
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, redactErr(dbURL, fmt.Errorf("postgres: parse database URL %s: %w", safe, err))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, redactErr(dbURL, fmt.Errorf("postgres: open %s: %w", safe, err))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, openTimeout)
		defer cancel()
	}
	for {
		err := pool.Ping(ctx)
		if err == nil {
			return &DB{pool: pool}, nil
		}
		if !startingUp(err) || !retry.Wait(ctx, startingUpPoll) {
			pool.Close()
			return nil, redactErr(dbURL, fmt.Errorf("postgres: connect to %s: %w", safe, err))
		}
	}
}

// startingUpPoll is how often Open tries again while the server says it is
// starting up.
const startingUpPoll = 200 * time.Millisecond

// startingUp reports whether err is the server refusing connections for
// now: SQLSTATE 57P03 cannot_connect_now, which PostgreSQL answers while it
// starts up, recovers after a crash or shuts down. Open waits for it (until
// its deadline) instead of failing a process that starts during a restart
// of its database.
func startingUp(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57P03"
}

// Close closes every connection of the pool.
func (db *DB) Close() { db.pool.Close() }

// Redact returns dbURL with its password replaced by "xxxxx", in the URL
// form (user:pass@ and ?password=) and the key=value form (password=…).
func Redact(dbURL string) string {
	if u, err := url.Parse(dbURL); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	if scheme, rest, ok := strings.Cut(dbURL, "://"); ok {
		// Not a valid URL: hide everything before the last '@' and any
		// password= in the query.
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			rest = "xxxxx" + rest[i:]
		}
		return scheme + "://" + queryPassword.ReplaceAllString(rest, "${1}xxxxx")
	}
	return dsnPassword.ReplaceAllString(dbURL, "${1}xxxxx")
}

// queryPassword matches the value of password= in a URL query.
var queryPassword = regexp.MustCompile(`([?&]password=)[^&]*`)

// dsnPassword matches the value of password= in a key=value DSN, quoted or not.
var dsnPassword = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactedError carries a message with the password removed. Unwrap still
// reaches the cause for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr makes sure err's text holds no password of dbURL, whatever the
// driver put in it.
func redactErr(dbURL string, err error) error {
	msg := err.Error()
	for _, pw := range passwords(dbURL) {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return &redactedError{msg: msg, err: err}
}

// passwords returns the password of dbURL in every spelling that may show
// up in a message: as given, and URL-escaped.
func passwords(dbURL string) []string {
	var pw []string
	add := func(s string) {
		if s != "" {
			pw = append(pw, s, url.QueryEscape(s), url.PathEscape(s))
		}
	}
	if cfg, err := pgconn.ParseConfig(dbURL); err == nil {
		add(cfg.Password)
	}
	if u, err := url.Parse(dbURL); err == nil {
		p, _ := u.User.Password()
		add(p)
		add(u.Query().Get("password"))
	}
	for _, m := range dsnPassword.FindAllStringSubmatch(dbURL, -1) {
		add(strings.Trim(m[2], "'"))
	}
	return pw
}

// classify wraps a failed statement's error: permanent (asynq.SkipRetry)
// when the database refused the data, plain otherwise.
func classify(err error, format string, args ...any) error {
	err = fmt.Errorf(format+": %w", append(args, err)...)
	if permanent(err) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

// permanent reports whether err is the database refusing the data itself.
func permanent(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}
