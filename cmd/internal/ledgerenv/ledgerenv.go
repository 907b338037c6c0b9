// Package ledgerenv opens the dead-letter ledger the binaries share, from
// the environment: PostgreSQL when DEAD_LETTER_DATABASE_URL (or
// AUDIT_DATABASE_URL) is set, else the JSON-lines file DEAD_LETTER_PATH
// (default dead-letters.jsonl). cmd/server, cmd/monitor and jobctl must
// point at the same one.
package ledgerenv

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/postgres"
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
}

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

// Open opens the ledger for reading and repairs (cmd/monitor, jobctl).
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
