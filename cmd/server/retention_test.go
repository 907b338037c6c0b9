package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
)

// The server's retention loop purges requeued and discarded dead letters
// past DEAD_LETTER_RETENTION when it starts, and never an open one.
func TestPurgeLoopKeepsOpenDeadLetters(t *testing.T) {
	l, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dl.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	old := time.Now().Add(-100 * 24 * time.Hour)
	for _, id := range []string{"open-old", "requeued-old", "discarded-old", "discarded-new"} {
		if _, err := l.Record(ctx, deadletter.Entry{ID: id, FailedAt: old}); err != nil {
			t.Fatal(err)
		}
	}
	l.MarkRequeued(ctx, "requeued-old", deadletter.Resolution{Actor: "a", At: old.Add(time.Hour), Run: "r"})
	l.MarkDiscarded(ctx, "discarded-old", deadletter.Resolution{Actor: "a", Reason: "x", At: old.Add(time.Hour)})
	l.MarkDiscarded(ctx, "discarded-new", deadletter.Resolution{Actor: "a", Reason: "x", At: time.Now()})

	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); purgeLoop(pctx, l, 90*24*time.Hour, slog.New(slog.DiscardHandler)) }()
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		p, _ := l.List(ctx, deadletter.Filter{}, "", 10)
		got = got[:0]
		for _, e := range p.Entries {
			got = append(got, e.ID)
		}
		if len(got) == 2 {
			break
		}
	}
	cancel()
	<-done
	if len(got) != 2 || got[0] != "discarded-new" || got[1] != "open-old" {
		t.Errorf("got %v, want [discarded-new open-old]", got)
	}
}
