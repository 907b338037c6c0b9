package main

import (
	"context"
	"fmt"
	"os/user"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/hibiken/asynq"
)

func TestDeadLetterCommands(t *testing.T) {
	f := setup(t)
	if r := f.run("dlq", "list"); r.code != 0 || strings.TrimSpace(r.stdout) != "no dead letters" {
		t.Fatalf("empty dlq list: got exit %d stdout %q, want 0 and %q", r.code, r.stdout, "no dead letters")
	}
	if r := f.run("dlq", "list", "--json"); r.code != 0 || strings.Join(strings.Fields(r.stdout), "") != `{"items":[],"next":null}` {
		t.Fatalf("empty dlq list --json: got exit %d stdout %q, want {\"items\": [], \"next\": null}", r.code, r.stdout)
	}
	var ids []string
	for i := range 12 {
		ids = append(ids, f.enqueueRelease(fmt.Sprintf("esc-dead-%02d", i)))
	}
	f.archive(ids...)
	newest := slices.Clone(ids)
	slices.Reverse(newest)

	t.Run("list table", func(t *testing.T) {
		r := f.run("dlq", "list", "--limit", "10")
		if r.code != 0 {
			t.Fatalf("exit: got %d, want 0 (stderr %q)", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 12 || !strings.HasPrefix(lines[11], "more: --cursor ") {
			t.Fatalf("stdout: got %d lines, want a header, 10 rows and the next cursor:\n%s", len(lines), r.stdout)
		}
		for _, col := range []string{"ID", "TYPE", "QUEUE", "STATE", "WHY", "ATTEMPTS", "FAILED AT", "ERROR"} {
			if !strings.Contains(lines[0], col) {
				t.Errorf("header: got %q, want column %s", lines[0], col)
			}
		}
		for i, line := range lines[1:11] {
			row := strings.Fields(line)
			if row[0] != newest[i] || row[1] != "send_release_email" || row[2] != "default" || row[3] != "open" || row[4] != "permanent" || row[5] != "1" {
				t.Errorf("row %d: got %q, want %s send_release_email default open permanent 1 …", i, line, newest[i])
			}
		}
		if strings.Contains(r.stdout, "jane.doe@example.com") || !strings.Contains(r.stdout, "j***@example.com") {
			t.Errorf("got %q, want the e-mail address masked", r.stdout)
		}
	})

	t.Run("list json pages", func(t *testing.T) {
		var got []string
		args := []string{"--json", "dlq", "list", "--limit", "5"}
		for range 10 {
			r := f.run(args...)
			if r.code != 0 {
				t.Fatalf("exit: got %d (stderr %q)", r.code, r.stderr)
			}
			l := decode[deadLetterList](t, r.stdout)
			for _, e := range l.Items {
				got = append(got, e.ID)
				if e.State != "open" || !strings.Contains(string(e.Payload), "j***@example.com") || e.FailedAt.IsZero() {
					t.Errorf("got %+v, want open with the payload masked", e)
				}
			}
			if l.Next == nil {
				break
			}
			args = []string{"--json", "dlq", "list", "--limit", "5", "--cursor", *l.Next}
		}
		if !slices.Equal(got, newest) {
			t.Errorf("got %v, want all 12 newest first, once", got)
		}
	})

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"--transaction-id", "esc-dead-03"}, []string{ids[3]}},
			{[]string{"--since", "1h", "--state", "open", "--limit", "3"}, newest[:3]},
			{[]string{"--type", "audit_log_created"}, nil},
			{[]string{"--since", time.Now().Add(time.Hour).Format(time.RFC3339)}, nil},
		} {
			r := f.run(append([]string{"--json", "dlq", "list"}, tc.args...)...)
			var got []string
			for _, e := range decode[deadLetterList](t, r.stdout).Items {
				got = append(got, e.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%v: got %v, want %v", tc.args, got, tc.want)
			}
		}
	})

	t.Run("show", func(t *testing.T) {
		r := f.run("dlq", "show", ids[0])
		if r.code != 0 || !strings.Contains(r.stdout, "state:") || !strings.Contains(r.stdout, "open") || strings.Contains(r.stdout, "jane.doe@") {
			t.Errorf("show: got exit %d stdout %q, want the open dead letter, masked", r.code, r.stdout)
		}
		if r := f.run("dlq", "show", "send_release_email:escrow-nope"); r.code != 1 {
			t.Errorf("show unknown: got exit %d, want 1", r.code)
		} else {
			checkOneLine(t, r, "no dead letter")
		}
	})

	t.Run("requeue and discard", func(t *testing.T) {
		r := f.run("--json", "dlq", "requeue", ids[0], "--reason", "mailbox fixed", "--actor", "alice")
		if r.code != 0 {
			t.Fatalf("exit: got %d (stderr %q)", r.code, r.stderr)
		}
		e := decode[struct{ ID, State, Actor, Reason string }](t, r.stdout)
		if e.ID != ids[0] || e.State != "requeued" || e.Actor != "alice" || e.Reason != "mailbox fixed" {
			t.Errorf("got %+v, want requeued by alice", e)
		}
		ti := f.taskInfo("default", ids[0])
		if ti.State != asynq.TaskStatePending || ti.Retried != 0 || ti.MaxRetry != retry.Max {
			t.Errorf("in Redis: got state %s retried %d maxRetry %d, want pending 0 3", ti.State, ti.Retried, ti.MaxRetry)
		}
		r = f.run("dlq", "requeue", ids[1])
		if r.code != 0 || !strings.HasPrefix(r.stdout, "requeued "+ids[1]+"\n") {
			t.Fatalf("text requeue: got exit %d stdout %q (stderr %q)", r.code, r.stdout, r.stderr)
		}
		if u, err := user.Current(); err == nil && !strings.Contains(r.stdout, u.Username) {
			t.Errorf("got %q, want the OS user %s as the actor", r.stdout, u.Username)
		}
		if r := f.run("dlq", "requeue", ids[1]); r.code != 1 {
			t.Errorf("second requeue: got exit %d, want 1", r.code)
		} else {
			checkOneLine(t, r, "not open")
		}
		if r := f.run("dlq", "requeue", "send_release_email:escrow-nope"); r.code != 1 {
			t.Errorf("unknown: got exit %d, want 1", r.code)
		} else {
			checkOneLine(t, r, "not found")
		}
		if r := f.run("dlq", "discard", ids[2], "--reason", "refunded by hand"); r.code != 0 || !strings.Contains(r.stdout, "discarded") {
			t.Errorf("discard: got exit %d stdout %q (stderr %q)", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("bulk requeue with a dry run", func(t *testing.T) {
		want := slices.Clone(ids[3:])
		slices.Sort(want)
		type bulk struct {
			Matched, Requeued int
			IDs               []string
		}
		r := f.run("--json", "dlq", "requeue", "--type", "send_release_email", "--since", "1h", "--dry-run")
		b := decode[bulk](t, r.stdout)
		slices.Sort(b.IDs)
		if r.code != 0 || b.Matched != 9 || b.Requeued != 0 || !slices.Equal(b.IDs, want) {
			t.Errorf("dry run: got exit %d %+v, want the 9 open ones matched, none requeued", r.code, b)
		}
		if ti := f.taskInfo("default", ids[3]); ti.State != asynq.TaskStateArchived {
			t.Errorf("after the dry run: got %s, want archived", ti.State)
		}
		r = f.run("--json", "dlq", "requeue", "--type", "send_release_email", "--since", "1h")
		b = decode[bulk](t, r.stdout)
		slices.Sort(b.IDs)
		if r.code != 0 || b.Matched != 9 || b.Requeued != 9 || !slices.Equal(b.IDs, want) {
			t.Errorf("real run: got exit %d %+v, want 9 requeued", r.code, b)
		}
		for _, id := range ids[3:] {
			if ti := f.taskInfo("default", id); ti.State != asynq.TaskStatePending {
				t.Errorf("%s: got %s, want pending", id, ti.State)
			}
		}
	})

	t.Run("list needs no Redis", func(t *testing.T) {
		env := map[string]string{"REDIS_URL": "redis://" + peertest.Addr(peertest.FreePort(t)) + "/0", "DEAD_LETTER_PATH": f.env["DEAD_LETTER_PATH"]}
		if r := runWith(env, "", "dlq", "list", "--state", "discarded"); r.code != 0 || !strings.Contains(r.stdout, ids[2]) {
			t.Errorf("with Redis down: got exit %d stdout %q stderr %q, want the discarded dead letter", r.code, r.stdout, r.stderr)
		}
	})
}

// A discard that would let the job run (a job of that ID is pending in
// Redis) is refused: jobctl exits non-zero with a one-line reason and
// the record stays open.
func TestDiscardConflictExitsNonZero(t *testing.T) {
	f := setup(t)
	id := f.enqueueRelease("esc-conflict")
	l, err := deadletter.OpenFile(f.env["DEAD_LETTER_PATH"])
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Record(context.Background(), deadletter.Entry{ID: id, Type: "send_release_email", Queue: "default",
		Payload: []byte(`{}`), Why: deadletter.WhyPermanent, FailedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	r := f.run("dlq", "discard", id, "--reason", "not needed")
	if r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "conflict") || !strings.Contains(r.stderr, "pending") {
		t.Errorf("got exit %d stderr %q, want non-zero and one line naming the conflict", r.code, r.stderr)
	}
	if got, _ := l.Get(context.Background(), id); got.State != deadletter.StateOpen {
		t.Errorf("ledger: got %s, want open", got.State)
	}
	if ti, err := f.inspector.GetTaskInfo("default", id); err != nil || ti.State != asynq.TaskStatePending {
		t.Errorf("asynq: got %+v, %v; want the job pending", ti, err)
	}
}
