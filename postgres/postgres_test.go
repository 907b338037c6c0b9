package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/postgres"
)

var (
	_ handlers.AuditSink = (*postgres.AuditSink)(nil)
	_ deadletter.Ledger  = (*postgres.DeadLetters)(nil)
)

// setup opens a fresh database for this test, migrated, closed at cleanup.
func setup(t *testing.T) *postgres.DB {
	t.Helper()
	db := open(t, peertest.Postgres(t))
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db
}

func open(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

// query runs a one-value query on the test's database.
func query[T any](t *testing.T, url, sql string, args ...any) T {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func event(id string) payloads.AuditLogCreated {
	return payloads.AuditLogCreated{
		EventID: id, Actor: "user-1", Action: "escrow.released", TransactionID: "esc-123",
		OccurredAt: "2024-05-01T12:00:00+02:00", Metadata: json.RawMessage(`{"amount": 12500, "currency": "USD"}`),
	}
}

func TestMigrate(t *testing.T) {
	url := peertest.Postgres(t)
	db := open(t, url)
	ctx := context.Background()
	// Twice in a row, then four processes starting at once.
	for i := range 2 {
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- open(t, url).Migrate(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	tests := []struct{ name, sql string }{
		{"audit_events", `SELECT to_regclass('audit_events') IS NOT NULL`},
		{"dead_letters", `SELECT to_regclass('dead_letters') IS NOT NULL`},
		{"dead_letters_archived_at index", `SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE tablename = 'dead_letters' AND indexdef LIKE '%(archived_at)%')`},
		{"audit_events primary key on event_id", `SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE tablename = 'audit_events' AND indexdef LIKE '%UNIQUE%(event_id)%')`},
	}
	for _, tt := range tests {
		if got := query[bool](t, url, tt.sql); !got {
			t.Errorf("%s: got absent, want present", tt.name)
		}
	}
}

func TestAuditInsertOrIgnore(t *testing.T) {
	changed := event("ev-1")
	changed.Action = "escrow.refunded"
	tests := []struct {
		name       string
		events     []payloads.AuditLogCreated
		wantRows   int
		wantAction string // of ev-1
	}{
		{"one event", []payloads.AuditLogCreated{event("ev-1")}, 1, "escrow.released"},
		{"same eventId twice", []payloads.AuditLogCreated{event("ev-1"), event("ev-1")}, 1, "escrow.released"},
		{"different eventIds", []payloads.AuditLogCreated{event("ev-1"), event("ev-2")}, 2, "escrow.released"},
		{"same eventId, other content: first wins", []payloads.AuditLogCreated{event("ev-1"), changed}, 1, "escrow.released"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := peertest.Postgres(t)
			db := open(t, url)
			if err := db.Migrate(context.Background()); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			sink := db.AuditSink()
			for _, e := range tt.events {
				if err := sink.WriteAudit(context.Background(), e); err != nil {
					t.Fatalf("WriteAudit(%s): %v", e.EventID, err)
				}
			}
			if got := query[int64](t, url, `SELECT count(*) FROM audit_events`); got != int64(tt.wantRows) {
				t.Errorf("got %d rows, want %d", got, tt.wantRows)
			}
			if got := query[string](t, url, `SELECT action FROM audit_events WHERE event_id = 'ev-1'`); got != tt.wantAction {
				t.Errorf("got action %q, want %q", got, tt.wantAction)
			}
		})
	}
}

func TestAuditConcurrentSameEvent(t *testing.T) {
	url := peertest.Postgres(t)
	db := open(t, url)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 20 {
				if err := db.AuditSink().WriteAudit(context.Background(), event(fmt.Sprintf("ev-%d", i))); err != nil {
					t.Errorf("WriteAudit: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if got := query[int64](t, url, `SELECT count(*) FROM audit_events`); got != 20 {
		t.Errorf("got %d rows, want 20", got)
	}
}

func TestAuditColumns(t *testing.T) {
	bare := event("ev-bare")
	bare.TransactionID, bare.Metadata = "", nil
	tests := []struct {
		name string
		e    payloads.AuditLogCreated
		sql  string
		want string
	}{
		{"metadata is jsonb", event("ev-1"), `SELECT pg_typeof(metadata)::text FROM audit_events WHERE event_id = $1`, "jsonb"},
		{"metadata is an object", event("ev-1"), `SELECT jsonb_typeof(metadata) FROM audit_events WHERE event_id = $1`, "object"},
		{"metadata is queryable", event("ev-1"), `SELECT (metadata->>'amount') || ' ' || (metadata->>'currency') FROM audit_events WHERE event_id = $1`, "12500 USD"},
		{"occurredAt keeps the instant", event("ev-1"), `SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') FROM audit_events WHERE event_id = $1`, "2024-05-01T10:00:00"},
		{"actor, action, transaction", event("ev-1"), `SELECT actor || ' ' || action || ' ' || transaction_id FROM audit_events WHERE event_id = $1`, "user-1 escrow.released esc-123"},
		{"recorded_at is set", event("ev-1"), `SELECT (recorded_at > now() - interval '1 minute')::text FROM audit_events WHERE event_id = $1`, "true"},
		{"no metadata is NULL", bare, `SELECT (metadata IS NULL)::text FROM audit_events WHERE event_id = $1`, "true"},
		{"no transaction is NULL", bare, `SELECT (transaction_id IS NULL)::text FROM audit_events WHERE event_id = $1`, "true"},
	}
	url := peertest.Postgres(t)
	db := open(t, url)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.AuditSink().WriteAudit(context.Background(), tt.e); err != nil {
				t.Fatalf("WriteAudit: %v", err)
			}
			if got := query[string](t, url, tt.sql, tt.e.EventID); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAuditErrors(t *testing.T) {
	badTime := event("ev-1")
	badTime.OccurredAt = "yesterday"
	nul := event("ev-2")
	nul.Metadata = json.RawMessage(`{"note": "a\u0000b"}`)
	notJSON := event("ev-3")
	notJSON.Metadata = json.RawMessage(`{not json`)
	tests := []struct {
		name          string
		e             payloads.AuditLogCreated
		wantPermanent bool
	}{
		{"no eventId", payloads.AuditLogCreated{Actor: "a", Action: "b", OccurredAt: "2024-05-01T12:00:00Z"}, true},
		{"occurredAt not RFC 3339", badTime, true},
		{"metadata jsonb refuses (NUL)", nul, true},
		{"metadata not JSON", notJSON, true},
	}
	db := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.AuditSink().WriteAudit(context.Background(), tt.e)
			if err == nil {
				t.Fatalf("got nil error, want one")
			}
			if got := errors.Is(err, asynq.SkipRetry); got != tt.wantPermanent {
				t.Errorf("got permanent %v (%v), want %v", got, err, tt.wantPermanent)
			}
		})
	}

	t.Run("database gone is transient", func(t *testing.T) {
		db := setup(t)
		db.Close()
		err := db.AuditSink().WriteAudit(context.Background(), event("ev-9"))
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Errorf("got %v, want a transient (retryable) error", err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	cfg, err := pgconn.ParseConfig(peertest.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	host, port := cfg.Host, cfg.Port
	closed := peertest.FreePort(t)
	const pw = "s3cretpass"
	tests := []struct {
		name string
		url  string
		want string // in the error
	}{
		{"empty", "", "empty database URL"},
		{"nobody listening", fmt.Sprintf("postgres://app:%s@127.0.0.1:%d/escrow?sslmode=disable", pw, closed), "connect to postgres://app:xxxxx@127.0.0.1:"},
		{"database missing", fmt.Sprintf("postgres://%s:%s@%s:%d/no_such_db?sslmode=disable", cfg.User, pw, host, port), "no_such_db"},
		{"bad port", fmt.Sprintf("postgres://app:%s@127.0.0.1:notaport/escrow", pw), "parse database URL"},
		{"bad escape in password", "postgres://app:" + pw + "%zz@127.0.0.1:5432/escrow", "parse database URL"},
		{"password in query", fmt.Sprintf("postgres://127.0.0.1:%d/escrow?user=app&password=%s&sslmode=disable", closed, pw), "password=xxxxx"},
		{"key=value DSN", fmt.Sprintf("host=127.0.0.1 port=%d user=app password=%s dbname=escrow sslmode=disable", closed, pw), "password=xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			db, err := postgres.Open(ctx, tt.url)
			if err == nil {
				db.Close()
				t.Fatalf("got nil error, want one")
			}
			msg := err.Error()
			if strings.Contains(msg, pw) {
				t.Errorf("got error %q, want it without the password", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("got error %q, want it to contain %q", msg, tt.want)
			}
			if !strings.HasPrefix(msg, "postgres: ") {
				t.Errorf("got error %q, want it to start with %q", msg, "postgres: ")
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://app:s3cret@db:5432/escrow?sslmode=require", "postgres://app:xxxxx@db:5432/escrow?sslmode=require"},
		{"postgresql://app@db/escrow", "postgresql://app@db/escrow"},
		{"postgres://db/escrow?password=s3cret&user=app", "postgres://db/escrow?password=xxxxx&user=app"},
		{"postgres://app:s3%zz@db/escrow", "postgres://xxxxx@db/escrow"},
		{"host=db user=app password=s3cret dbname=escrow", "host=db user=app password=xxxxx dbname=escrow"},
		{"host=db password='s3 cret' dbname=escrow", "host=db password=xxxxx dbname=escrow"},
	}
	for _, tt := range tests {
		if got := postgres.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
