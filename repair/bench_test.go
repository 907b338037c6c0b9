package repair_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
)

// benchDeadLetters is how many dead letters BenchmarkDeadLetterList lists.
const benchDeadLetters = 10000

// BenchmarkDeadLetterList measures one page (50, the API's default) of
// 10,000 dead letters, newest first: the first page and a deep one (after
// 9,000), from the file ledger and from PostgreSQL, next to raw asynq
// listing a page of its archive (ListArchivedTasks, which reads the oldest
// first) of the same size in the same run.
//
//	go test -run '^$' -bench DeadLetterList -benchtime 200x ./repair/
func BenchmarkDeadLetterList(b *testing.B) {
	ctx := context.Background()
	base := time.Now().Add(-48 * time.Hour)
	entry := func(i int) deadletter.Entry {
		return deadletter.Entry{ID: fmt.Sprintf("send_release_email:escrow-esc-%05d-release-abc", i), Type: "send_release_email", Queue: "default",
			Payload: []byte(fmt.Sprintf(`{"transactionId":"esc-%05d","recipientEmail":"jane@example.com","amount":100,"currency":"EUR"}`, i)),
			Error:   "smtp: 550 mailbox unavailable", Attempts: 4, Why: deadletter.WhyExhausted, FailedAt: base.Add(time.Duration(i) * time.Second)}
	}
	for _, store := range stores {
		b.Run(store, func(b *testing.B) {
			l := escrowtest.Ledger(b, store)
			for i := range benchDeadLetters {
				if _, err := l.Record(ctx, entry(i)); err != nil {
					b.Fatal(err)
				}
			}
			skip, err := l.List(ctx, deadletter.Filter{}, "", 9000)
			if err != nil || skip.Next == "" {
				b.Fatal(err)
			}
			for _, page := range []struct{ name, cursor string }{{"first", ""}, {"deep", skip.Next}} {
				b.Run(page.name, func(b *testing.B) {
					for b.Loop() {
						p, err := l.List(ctx, deadletter.Filter{}, page.cursor, 50)
						if err != nil || len(p.Entries) != 50 {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
	b.Run("raw-asynq-archive", func(b *testing.B) {
		opt, err := asynq.ParseRedisURI(peertest.Redis(b))
		if err != nil {
			b.Fatal(err)
		}
		c := asynq.NewClient(opt)
		defer c.Close()
		in := asynq.NewInspector(opt)
		defer in.Close()
		for i := range benchDeadLetters {
			e := entry(i)
			if _, err := c.Enqueue(asynq.NewTask(e.Type, e.Payload, asynq.TaskID(e.ID))); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := in.ArchiveAllPendingTasks("default"); err != nil {
			b.Fatal(err)
		}
		for _, page := range []struct {
			name string
			n    int
		}{{"first", 1}, {"deep", 181}} {
			b.Run(page.name, func(b *testing.B) {
				for b.Loop() {
					ts, err := in.ListArchivedTasks("default", asynq.PageSize(50), asynq.Page(page.n))
					if err != nil || len(ts) != 50 {
						b.Fatal(err)
					}
				}
			})
		}
	})
}
