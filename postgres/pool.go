package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// Pool is the underlying connection pool, for packages that run their own
// queries on the same database (the outbox relay, a service's transactions).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }
