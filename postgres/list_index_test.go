package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/peertest"
)

// List's filters by transactionId and by partnerId use their expression
// indexes, not a scan of the table: EXPLAIN of the exact query List runs,
// over 20,000 rows of 2,000 escrows and 50 partners (analyzed), names the
// index, with and without a cursor and a state.
func TestListFiltersByPayloadUseTheirIndex(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, peertest.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO dead_letters (job_id, type, queue, payload, last_error, attempts, permanent, archived_at, run, why)
		SELECT 'webhook_escrow_status_changed:w-' || i, 'webhook_escrow_status_changed', 'default',
			jsonb_build_object('transactionId', 'esc-' || (i % 2000), 'partnerId', 'partner-' || (i % 50)),
			'boom', 4, false, now() - i * interval '1 second', 'r1', 'exhausted'
		FROM generate_series(1, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `ANALYZE dead_letters`); err != nil {
		t.Fatal(err)
	}
	cursor := deadletter.Cursor{FailedAt: time.Now().Add(-time.Hour), Seq: 1 << 40}
	for _, tc := range []struct {
		name   string
		filter deadletter.Filter
		has    bool
		want   string
	}{
		{"transactionId", deadletter.Filter{TransactionID: "esc-7"}, false, "dead_letters_transaction_idx"},
		{"transactionId after a cursor", deadletter.Filter{TransactionID: "esc-7"}, true, "dead_letters_transaction_idx"},
		{"transactionId and state", deadletter.Filter{TransactionID: "esc-7", State: "open"}, false, "dead_letters_transaction_idx"},
		{"partnerId", deadletter.Filter{PartnerID: "partner-3"}, false, "dead_letters_partner_idx"},
		{"partnerId after a cursor", deadletter.Filter{PartnerID: "partner-3"}, true, "dead_letters_partner_idx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, args := listQuery(tc.filter, cursor, tc.has, 100)
			rows, err := db.pool.Query(ctx, "EXPLAIN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(plan, "\n")
			if !strings.Contains(got, tc.want) || strings.Contains(got, "Seq Scan") {
				t.Errorf("plan of %s: got\n%s\nwant a scan of %s, no Seq Scan", q, got, tc.want)
			}
		})
	}
}
