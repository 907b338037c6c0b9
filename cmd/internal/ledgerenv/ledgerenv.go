// Package ledgerenv opens the dead-letter ledger the binaries share, from
// the environment: PostgreSQL when DEAD_LETTER_DATABASE_URL (or
// AUDIT_DATABASE_URL) is set, else the JSON-lines file DEAD_LETTER_PATH
// (default dead-letters.jsonl). cmd/server, cmd/monitor and jobctl must
// point at the same one, so each says which it uses (Config.String); jobctl
// takes no default (Config.Require) and never creates a file ledger
// (Config.OpenExisting).
package ledgerenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/postgres"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultPath is the file ledger's path when DEAD_LETTER_PATH is unset.
const DefaultPath = "dead-letters.jsonl"

// DefaultRetention is DEAD_LETTER_RETENTION's default.
const DefaultRetention = 90 * 24 * time.Hour

// Config says where the ledger is.
type Config struct {
	// DatabaseURL is DEAD_LETTER_DATABASE_URL, else AUDIT_DATABASE_URL.
	DatabaseURL string
	// Path is DEAD_LETTER_PATH: the ledger without a database, the spill
	// file of a worker's failed database writes with one.
	Path string
	// Retention is DEAD_LETTER_RETENTION: how long a requeued or discarded
	// dead letter is kept.
	Retention time.Duration

	// pathSet says DEAD_LETTER_PATH was given (Path is not the default).
	pathSet bool
}

// ErrNoLedger is returned by Require when the environment names no ledger.
var ErrNoLedger = errors.New("no dead-letter ledger configured: set DEAD_LETTER_DATABASE_URL (the PostgreSQL ledger the workers record into) or DEAD_LETTER_PATH (their file ledger)")

// Load reads the configuration; errors name the variable.
func Load(getenv func(string) string) (Config, error) {
	c := Config{
		DatabaseURL: strings.TrimSpace(getenv("DEAD_LETTER_DATABASE_URL")),
		Path:        strings.TrimSpace(getenv("DEAD_LETTER_PATH")),
		Retention:   DefaultRetention,
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = strings.TrimSpace(getenv("AUDIT_DATABASE_URL"))
	}
	if c.Path == "" {
		c.Path = DefaultPath
	} else {
		c.pathSet = true
	}
	if v := strings.TrimSpace(getenv("DEAD_LETTER_RETENTION")); v != "" {
		d, err := ParseRetention(v)
		if err != nil {
			return c, fmt.Errorf("DEAD_LETTER_RETENTION=%q: %w", v, err)
		}
		c.Retention = d
	}
	return c, nil
}

// ParseRetention reads "90d", "720h" or any Go duration of at least an hour.
func ParseRetention(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("want a number of days like 90d, or a duration like 720h")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("want a number of days like 90d, or a duration like 720h")
		}
	}
	if d < time.Hour {
		return 0, fmt.Errorf("want at least 1h (resolved dead letters are kept this long; open ones always)")
	}
	return d, nil
}

// Require fails with ErrNoLedger unless the environment names the ledger
// (a database URL or DEAD_LETTER_PATH): a tool that reads the workers'
// ledger must not guess it.
func (c Config) Require() error {
	if c.DatabaseURL == "" && !c.pathSet {
		return ErrNoLedger
	}
	return nil
}

// String says which ledger c is, without credentials: "postgres
// (host:port/database)" or "file /absolute/path".
func (c Config) String() string {
	if c.DatabaseURL == "" {
		p, err := filepath.Abs(c.Path)
		if err != nil {
			p = c.Path
		}
		return "file " + p
	}
	pc, err := pgconn.ParseConfig(c.DatabaseURL)
	if err != nil {
		return "postgres (unparsable DEAD_LETTER_DATABASE_URL)"
	}
	return fmt.Sprintf("postgres (%s:%d/%s)", pc.Host, pc.Port, pc.Database)
}

// Store is an open ledger.
type Store struct {
	Ledger deadletter.Ledger
	// DB is set when the ledger is PostgreSQL.
	DB *postgres.DB
	// File is the file ledger, or with a database the spill file (opened
	// only by OpenWithSpill).
	File  *deadletter.File
	close []func()
}

// Close closes what Open opened.
func (s *Store) Close() {
	for i := len(s.close) - 1; i >= 0; i-- {
		s.close[i]()
	}
}

// OpenExisting is Open for a tool (jobctl): a file ledger that does not
// exist is an error naming its path, never a new empty file.
func (c Config) OpenExisting(ctx context.Context) (*Store, error) {
	if c.DatabaseURL == "" {
		if _, err := os.Stat(c.Path); err != nil {
			p, _ := filepath.Abs(c.Path)
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("DEAD_LETTER_PATH: no dead-letter ledger at %s (the workers create it; is it the path they use?)", p)
			}
			return nil, fmt.Errorf("DEAD_LETTER_PATH: %w", err)
		}
	}
	return c.Open(ctx)
}

// Open opens the ledger for reading and repairs (cmd/monitor); a missing
// file ledger is created.
func (c Config) Open(ctx context.Context) (*Store, error) {
	s := &Store{}
	if c.DatabaseURL == "" {
		f, err := deadletter.OpenFile(c.Path)
		if err != nil {
			return nil, fmt.Errorf("DEAD_LETTER_PATH: %w", err)
		}
		s.File, s.Ledger = f, f
		s.close = append(s.close, func() { f.Close() })
		return s, nil
	}
	db, err := postgres.Open(ctx, c.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DEAD_LETTER_DATABASE_URL: %w", err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("DEAD_LETTER_DATABASE_URL: %w", err)
	}
	s.DB, s.Ledger = db, db.DeadLetters()
	s.close = append(s.close, db.Close)
	return s, nil
}
