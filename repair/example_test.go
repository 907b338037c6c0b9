package repair_test

import (
	"context"
	"fmt"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// Requeue every open dead letter of one type from the last two hours,
// after a dry run, recording who did it and why. (Needs a Redis and the
// ledger the workers record into; not run as a test.)
func ExampleDesk_RequeueMatching() {
	ctx := context.Background()
	in := tasks.NewInspector(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"})
	defer in.Close()
	ledger, err := deadletter.OpenFile("dead-letters.jsonl")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ledger.Close()
	d := repair.NewDesk(in, ledger)

	f := deadletter.Filter{Type: "webhook_escrow_status_changed", Since: time.Now().Add(-2 * time.Hour)}
	dry, err := d.RequeueMatching(ctx, f, true, "alice", "partner endpoint back")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("would requeue", dry.Matched)
	done, err := d.RequeueMatching(ctx, f, false, "alice", "partner endpoint back")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("requeued", done.Requeued, "of", done.Matched)
}
