package outbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Relay defaults.
const (
	DefaultBatchSize    = 1000
	DefaultConcurrency  = 50
	DefaultClaimers     = 2
	DefaultPollInterval = time.Second
	DefaultMaxBackoff   = 5 * time.Second
	minBackoff          = 100 * time.Millisecond
	heldRetry           = 50 * time.Millisecond
)

// Enqueuer enqueues one job under its job ID; *tasks.Client is one. A job
// ID that Redis already holds must return an error that errors.Is
// tasks.ErrDuplicate.
type Enqueuer interface {
	Enqueue(ctx context.Context, t *tasks.Task) (string, error)
}

// RelayConfig configures a Relay. DB and Client are required.
type RelayConfig struct {
	// DB is the database holding the outbox table.
	DB *pgxpool.Pool
	// Client enqueues into Redis (a *tasks.Client, so REDIS_WAIT_REPLICAS
	// and the enqueue deadline apply to the relay too).
	Client Enqueuer
	// Logger receives one line per batch problem; nil discards.
	Logger *slog.Logger
	// BatchSize is the number of rows claimed per transaction
	// (DefaultBatchSize when 0 or negative).
	BatchSize int
	// Concurrency is the number of enqueues in flight within a batch
	// (DefaultConcurrency when 0 or negative).
	Concurrency int
	// Claimers is the number of batches in flight at once, each in its own
	// transaction (DefaultClaimers when 0 or negative): while one batch waits for
	// PostgreSQL another keeps Redis busy.
	Claimers int
	// PollInterval is how often the table is read without a notification
	// (DefaultPollInterval when 0 or negative): the fallback for a lost NOTIFY.
	PollInterval time.Duration
	// MaxBackoff caps the wait between attempts while Redis or PostgreSQL
	// fails (DefaultMaxBackoff when 0 or negative); the wait doubles from 100 ms.
	MaxBackoff time.Duration
	// AfterEnqueue, when set, runs after a batch's enqueues and before its
	// rows are deleted, with the job IDs that were enqueued or found already
	// in Redis. It exists for crash tests; leave it nil.
	AfterEnqueue func(jobIDs []string)
}

// Relay moves committed outbox rows to Redis. Several relays, in one
// process or many, may share a table.
type Relay struct {
	cfg  RelayConfig
	log  *slog.Logger
	wake []chan struct{} // one per claimer

	enqueued   atomic.Int64 // rows enqueued as new jobs
	duplicates atomic.Int64 // rows whose job ID Redis already held
	failures   atomic.Int64 // enqueue attempts that failed (rows kept)
	attempts   atomic.Int64 // enqueue calls made
	held       atomic.Int64 // partner events left for a later batch (holdBack)
}

// NewRelay checks cfg and creates the outbox table if needed.
func NewRelay(ctx context.Context, cfg RelayConfig) (*Relay, error) {
	switch {
	case cfg.DB == nil:
		return nil, errors.New("outbox: relay: DB is required")
	case cfg.Client == nil:
		return nil, errors.New("outbox: relay: Client is required")
	}
	// Unset (zero or negative) numbers take their defaults.
	cfg.BatchSize = cmp.Or(max(cfg.BatchSize, 0), DefaultBatchSize)
	cfg.Concurrency = cmp.Or(max(cfg.Concurrency, 0), DefaultConcurrency)
	cfg.Claimers = cmp.Or(max(cfg.Claimers, 0), DefaultClaimers)
	cfg.PollInterval = cmp.Or(max(cfg.PollInterval, 0), DefaultPollInterval)
	cfg.MaxBackoff = cmp.Or(max(cfg.MaxBackoff, 0), DefaultMaxBackoff)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := Migrate(ctx, cfg.DB); err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, log: log.With("component", "outbox-relay")}
	for range cfg.Claimers {
		r.wake = append(r.wake, make(chan struct{}, 1))
	}
	return r, nil
}

// Counts are the relay's running totals since it started.
type Counts struct {
	// Attempts is the number of enqueue calls made.
	Attempts int64
	// Enqueued is the number of rows that became new jobs.
	Enqueued int64
	// Duplicates is the number of rows whose job ID Redis already held
	// (counted as done).
	Duplicates int64
	// Failures is the number of enqueue calls that failed; their rows stay.
	Failures int64
	// HeldBack is the number of times a partner event was left for a later
	// batch because an earlier event of its escrow was still in the table
	// outside its batch (being enqueued by another batch, or failed).
	HeldBack int64
}

// Counts returns the running totals.
func (r *Relay) Counts() Counts {
	return Counts{Attempts: r.attempts.Load(), Enqueued: r.enqueued.Load(), Duplicates: r.duplicates.Load(), Failures: r.failures.Load(), HeldBack: r.held.Load()}
}

// Run relays until ctx is done, then finishes the batches in hand and
// returns nil. Failures of Redis or PostgreSQL are logged and retried with
// backoff; they do not end Run.
func (r *Relay) Run(ctx context.Context) error {
	lctx, stopListen := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.listen(lctx) }()
	defer func() { stopListen(); wg.Wait() }()

	var claimers sync.WaitGroup
	for _, wake := range r.wake {
		claimers.Add(1)
		go func() { defer claimers.Done(); r.claimLoop(ctx, wake) }()
	}
	claimers.Wait()
	return nil
}

// claimLoop relays batch after batch while rows are waiting, then waits
// for a notification or the poll.
func (r *Relay) claimLoop(ctx context.Context, wake <-chan struct{}) {
	backoff := time.Duration(0)
	for {
		n, full, held, err := r.relayBatch(ctx)
		switch {
		case err != nil:
			backoff = min(max(2*backoff, minBackoff), r.cfg.MaxBackoff)
			r.log.Warn("outbox relay: batch failed, rows kept for the next attempt",
				"error", err.Error(), "relayed", n, "retry_in", backoff.String())
			if !retry.Wait(ctx, backoff) {
				return
			}
			continue
		case full:
			backoff = 0
			if ctx.Err() != nil {
				return
			}
			continue // more rows are waiting
		}
		backoff = 0
		wait := r.cfg.PollInterval
		if held {
			// Another batch holds earlier events of an escrow; try again
			// when it has likely committed.
			wait = min(wait, heldRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-time.After(wait):
		}
	}
}

const claimRows = `
SELECT id, job_id, task_type, payload, queue, timeout_ms, max_retry, retention_ms, process_at, headers
FROM escrowjobs_outbox
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED`

// relayBatch claims up to BatchSize rows, enqueues them and deletes the
// ones Redis now holds, in one transaction. It returns how many rows it
// deleted, whether the batch was full (more may be waiting) and whether it
// left partner events for a later batch (holdBack). A batch that started
// finishes even when ctx ends, within the enqueue deadline.
func (r *Relay) relayBatch(ctx context.Context) (n int, full, held bool, err error) {
	if ctx.Err() != nil {
		return 0, false, false, nil
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	tx, err := r.cfg.DB.Begin(bctx)
	if err != nil {
		return 0, false, false, fmt.Errorf("outbox: begin: %w", err)
	}
	defer tx.Rollback(bctx) //nolint:errcheck // after Commit it is a no-op

	ids, rows, err := r.claim(bctx, tx)
	if err != nil || len(rows) == 0 {
		return 0, false, false, err
	}
	claimed := len(rows)
	ids, rows, nHeld, err := r.holdBack(bctx, tx, ids, rows)
	if err != nil {
		return 0, false, false, err
	}
	r.held.Add(int64(nHeld))
	held = nHeld > 0
	done, enqErr := r.enqueueAll(bctx, rows)
	if r.cfg.AfterEnqueue != nil {
		jobIDs := make([]string, 0, len(rows))
		for i, ok := range done {
			if ok {
				jobIDs = append(jobIDs, rows[i].jobID)
			}
		}
		r.cfg.AfterEnqueue(jobIDs)
	}
	del := make([]int64, 0, len(ids))
	for i, ok := range done {
		if ok {
			del = append(del, ids[i])
		}
	}
	if len(del) > 0 {
		if _, err := tx.Exec(bctx, `DELETE FROM escrowjobs_outbox WHERE id = ANY($1)`, del); err != nil {
			return 0, false, held, errors.Join(enqErr, fmt.Errorf("outbox: delete relayed rows: %w", err))
		}
		if err := tx.Commit(bctx); err != nil {
			return 0, false, held, errors.Join(enqErr, fmt.Errorf("outbox: commit relayed rows: %w", err))
		}
	}
	return len(del), enqErr == nil && !held && claimed == r.cfg.BatchSize, held, enqErr
}

func (r *Relay) claim(ctx context.Context, tx pgx.Tx) ([]int64, []row, error) {
	rs, err := tx.Query(ctx, claimRows, r.cfg.BatchSize)
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: claim rows: %w", err)
	}
	defer rs.Close()
	var ids []int64
	var rows []row
	for rs.Next() {
		var (
			id                     int64
			rw                     row
			timeoutMS, retentionMS int64
			headers                []byte
		)
		if err := rs.Scan(&id, &rw.jobID, &rw.taskType, &rw.payload, &rw.queue, &timeoutMS, &rw.maxRetry,
			&retentionMS, &rw.processAt, &headers); err != nil {
			return nil, nil, fmt.Errorf("outbox: read row: %w", err)
		}
		rw.timeout, rw.retention = time.Duration(timeoutMS)*time.Millisecond, time.Duration(retentionMS)*time.Millisecond
		if len(headers) > 0 {
			if err := json.Unmarshal(headers, &rw.headers); err != nil {
				return nil, nil, fmt.Errorf("outbox: row %d (%s): headers: %w", id, rw.jobID, err)
			}
		}
		rw.escrow = escrowOf(rw.taskType, rw.payload)
		ids = append(ids, id)
		rows = append(rows, rw)
	}
	if err := rs.Err(); err != nil {
		return nil, nil, fmt.Errorf("outbox: claim rows: %w", err)
	}
	return ids, rows, nil
}

// earlierEvents lists the partner events below id max that this batch did
// not claim: rows another batch (of this relay or another) holds, or rows
// left by a failed enqueue.
const earlierEvents = `
SELECT id, payload FROM escrowjobs_outbox
WHERE task_type = $1 AND id < $2 AND NOT (id = ANY($3))`

// holdBack drops from a claimed batch every partner event of an escrow that
// has an earlier event still in the table outside the batch: another
// batch is enqueueing it (SKIP LOCKED let this one pass it) or its enqueue
// failed. Enqueued now, the later event would take the earlier sequence
// number; it stays, locked until this transaction ends, for a later batch.
// It returns the rows kept and how many were held back.
func (r *Relay) holdBack(ctx context.Context, tx pgx.Tx, ids []int64, rows []row) ([]int64, []row, int, error) {
	last := int64(-1)
	for i, rw := range rows {
		if rw.escrow != "" {
			last = ids[i]
		}
	}
	if last < 0 {
		return ids, rows, 0, nil
	}
	rs, err := tx.Query(ctx, earlierEvents, webhookType, last, ids)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("outbox: earlier partner events: %w", err)
	}
	first := map[string]int64{} // escrow → its first event outside the batch
	for rs.Next() {
		var (
			id      int64
			payload []byte
		)
		if err := rs.Scan(&id, &payload); err != nil {
			rs.Close()
			return nil, nil, 0, fmt.Errorf("outbox: earlier partner events: %w", err)
		}
		if tx := escrowOf(webhookType, payload); tx != "" {
			if f, ok := first[tx]; !ok || id < f {
				first[tx] = id
			}
		}
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return nil, nil, 0, fmt.Errorf("outbox: earlier partner events: %w", err)
	}
	if len(first) == 0 {
		return ids, rows, 0, nil
	}
	keptIDs, kept := ids[:0:0], rows[:0:0]
	for i, rw := range rows {
		if f, ok := first[rw.escrow]; ok && rw.escrow != "" && ids[i] > f {
			continue
		}
		keptIDs, kept = append(keptIDs, ids[i]), append(kept, rw)
	}
	return keptIDs, kept, len(rows) - len(kept), nil
}

// enqueueAll enqueues rows with up to Concurrency calls in flight. done[i]
// is true when Redis holds row i's job (new or already there). After the
// first failure no new call starts: Redis is likely down, and the rest wait
// for the next batch.
//
// The partner events of one escrow are enqueued one after another, in row
// order (lanes), so the sequence Enqueue gives each is in commit order.
func (r *Relay) enqueueAll(ctx context.Context, rows []row) ([]bool, error) {
	done := make([]bool, len(rows))
	var (
		next     atomic.Int64
		failed   atomic.Bool
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	ls := lanes(rows)
	workers := min(r.cfg.Concurrency, len(ls))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				l := int(next.Add(1) - 1)
				if l >= len(ls) {
					return
				}
				for _, i := range ls[l] {
					if failed.Load() {
						return
					}
					r.attempts.Add(1)
					_, err := r.cfg.Client.Enqueue(ctx, rows[i].task())
					switch {
					case err == nil:
						r.enqueued.Add(1)
						done[i] = true
					case errors.Is(err, tasks.ErrDuplicate):
						r.duplicates.Add(1)
						done[i] = true
					default:
						r.failures.Add(1)
						failed.Store(true)
						errOnce.Do(func() { firstErr = err })
					}
				}
			}
		}()
	}
	wg.Wait()
	return done, firstErr
}

// lanes splits rows (in commit order) into the indexes enqueued one after
// another: the partner events of one escrow share a lane, in row order;
// every other row is a lane of its own.
func lanes(rows []row) [][]int {
	ls := make([][]int, 0, len(rows))
	byEscrow := map[string]int{}
	for i, rw := range rows {
		if rw.escrow == "" {
			ls = append(ls, []int{i})
			continue
		}
		if l, ok := byEscrow[rw.escrow]; ok {
			ls[l] = append(ls[l], i)
			continue
		}
		byEscrow[rw.escrow] = len(ls)
		ls = append(ls, []int{i})
	}
	return ls
}

// escrowOf is the escrow of a partner event's payload; "" for any other
// job (or a payload without one).
func escrowOf(taskType string, payload []byte) string {
	if taskType != webhookType {
		return ""
	}
	var p struct {
		TransactionID string `json:"transactionId"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return ""
	}
	return p.TransactionID
}

// webhookType is the job type of partner events, numbered per escrow.
var webhookType = payloads.WebhookEscrowStatusChanged{}.TaskType()

// listen wakes Run on every NOTIFY from Add, on its own connection, and
// reconnects with backoff when that connection fails. While it is down the
// poll keeps rows flowing.
func (r *Relay) listen(ctx context.Context) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		backoff = min(max(2*backoff, minBackoff), r.cfg.MaxBackoff)
		r.log.Warn("outbox relay: LISTEN connection lost; polling meanwhile", "error", err.Error(), "retry_in", backoff.String())
		if !retry.Wait(ctx, backoff) {
			return
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, r.cfg.DB.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("outbox: listen: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return fmt.Errorf("outbox: listen: %w", err)
	}
	r.signal() // rows may have committed before LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("outbox: wait for notification: %w", err)
		}
		r.signal()
	}
}

// signal wakes every idle claimer; a busy one finds the rows anyway.
func (r *Relay) signal() {
	for _, w := range r.wake {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}
