package monitor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
)

// benchDeadLetters is how many dead letters BenchmarkConsolePages puts in
// the PostgreSQL ledger.
const benchDeadLetters = 10_000

// BenchmarkConsolePages renders the console's pages over 10,000 dead
// letters in PostgreSQL (one escrow holds 20 of them): the first page of
// the ledger, a page 9,000 entries down (by cursor), one dead letter and
// one escrow.
//
//	go test -run '^$' -bench BenchmarkConsolePages -benchtime 50x ./monitor/
func BenchmarkConsolePages(b *testing.B) {
	opt, err := asynq.ParseRedisURI(peertest.Redis(b))
	if err != nil {
		b.Fatal(err)
	}
	ledger := escrowtest.Ledger(b, "postgres")
	m, err := monitor.New(monitor.Config{RedisOpt: opt, APIToken: testToken, Username: testUser, Password: testPassword,
		DeadLetters: ledger, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	b.Cleanup(func() { srv.Close(); m.Close() })

	ctx := context.Background()
	base := time.Now().Add(-30 * 24 * time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < benchDeadLetters; i += 8 {
				tx := fmt.Sprintf("esc-%05d", i)
				if i%500 == 0 {
					tx = "esc-bench" // 20 dead letters of one escrow, spread over the ledger
				}
				_, err := ledger.Record(ctx, deadletter.Entry{ID: fmt.Sprintf("send_release_email:escrow-%05d-release", i), Type: "send_release_email",
					Queue: "default", Why: deadletter.WhyExhausted, Attempts: 4, Error: fmt.Sprintf("smtp: mailbox buyer%d@example.com refused the message", i),
					Payload:  []byte(fmt.Sprintf(`{"transactionId":%q,"recipientEmail":"buyer%d@example.com","amount":12500,"currency":"USD"}`, tx, i)),
					FailedAt: base.Add(time.Duration(i) * time.Minute)})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	// The cursor 9,000 entries down.
	cursor := ""
	for range 18 {
		p, err := ledger.List(ctx, deadletter.Filter{}, cursor, 500)
		if err != nil {
			b.Fatal(err)
		}
		cursor = p.Next
	}
	get := func(b *testing.B, path string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.SetBasicAuth(testUser, testPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		b.SetBytes(n)
	}
	for _, c := range []struct{ name, path string }{
		{"first page", "/console/dead-letters"},
		{"deep page", "/console/dead-letters?cursor=" + cursor},
		{"filtered by type, open", "/console/dead-letters?type=send_release_email&state=open"},
		{"one dead letter", "/console/dead-letters/send_release_email:escrow-05000-release"},
		{"one escrow", "/console/escrows/esc-bench"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				get(b, c.path)
			}
		})
	}
}
