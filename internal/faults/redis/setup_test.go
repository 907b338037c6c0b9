package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/testkit"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// occurredAt is the event time of the hand-built payloads.
const occurredAt = "2026-11-29T10:00:00Z"

// job builds job i of a series from the sample payloads: the eight types
// without fan-out in turn (so all three queues), every ID unique within
// the series and containing its name.
func job(t *testing.T, series string, i int, opts ...tasks.Option) *tasks.Task {
	t.Helper()
	return testkit.Task(t, testkit.Direct(series, i), opts...)
}

// queueTotals sums asynq's counts over all queues.
type queueTotals struct{ Pending, Active, Scheduled, Retry, Archived, Completed int }

func (q queueTotals) jobs() int {
	return q.Pending + q.Active + q.Scheduled + q.Retry + q.Archived + q.Completed
}

func totals(t *testing.T, insp *tasks.Inspector) queueTotals {
	t.Helper()
	var qs []tasks.QueueStats
	var err error
	for range 50 { // right after a restart the first commands may hit dead connections
		if qs, err = insp.Stats(context.Background()); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	var q queueTotals
	for _, s := range qs {
		q.Pending += s.Pending
		q.Active += s.Active
		q.Scheduled += s.Scheduled
		q.Retry += s.Retry
		q.Archived += s.Archived
		q.Completed += s.Completed
	}
	return q
}
