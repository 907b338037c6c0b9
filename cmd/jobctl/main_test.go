package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/retry"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{}) // as main does: failures are reported by jobctl itself
	os.Exit(peertest.RunMain(m))
}

// fixture is a Redis of this test alone and a way to run jobctl against it.
type fixture struct {
	t   *testing.T
	url string
	env map[string]string
	// inspector reads Redis directly, not through the code under test.
	inspector *asynq.Inspector
}

func setup(t *testing.T) *fixture {
	t.Helper()
	url := peertest.Redis(t)
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	in := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = in.Close() })
	// The workers' ledger: jobctl reads it and never creates it.
	path := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDIS_URL": url, "DEAD_LETTER_PATH": path}
	return &fixture{t: t, url: url, env: env, inspector: in}
}

// result is one run of jobctl.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

func runWith(env map[string]string, stdin string, args ...string) result {
	var out, errOut strings.Builder
	start := time.Now()
	code := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String(), took: time.Since(start)}
}

func (f *fixture) run(args ...string) result { return runWith(f.env, "", args...) }

// checkOneLine fails unless stderr is exactly one line containing every want.
func checkOneLine(t *testing.T, r result, wants ...string) {
	t.Helper()
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr: got %q, want exactly one line", r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "jobctl: ") {
		t.Errorf("stderr: got %q, want it to start with %q", r.stderr, "jobctl: ")
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr: got %q, want it to contain %q", r.stderr, w)
		}
	}
}

func (f *fixture) taskInfo(queue, id string) *asynq.TaskInfo {
	f.t.Helper()
	ti, err := f.inspector.GetTaskInfo(queue, id)
	if err != nil {
		f.t.Fatalf("task %s in queue %s: %v", id, queue, err)
	}
	return ti
}

// checkEmpty fails if anything was enqueued.
func (f *fixture) checkEmpty() {
	f.t.Helper()
	qs, err := f.inspector.Queues()
	if err != nil {
		f.t.Fatalf("list queues: %v", err)
	}
	if len(qs) != 0 {
		f.t.Errorf("queues: got %v, want none (nothing enqueued)", qs)
	}
}

func releasePayload(txID, email string) string {
	return fmt.Sprintf(`{"transactionId":%q,"recipientEmail":%q,"amount":1000,"currency":"USD"}`, txID, email)
}

// enqueueRelease enqueues the release e-mail of escrow txID through jobctl
// and returns its job ID.
func (f *fixture) enqueueRelease(txID string) string {
	f.t.Helper()
	p := releasePayload(txID, "jane.doe@example.com")
	if r := f.run("enqueue", "send_release_email", "--payload", p); r.code != 0 {
		f.t.Fatalf("enqueue %s: got exit %d, want 0 (stderr %q)", txID, r.code, r.stderr)
	}
	return wantID(f.t, "send_release_email", p)
}

// wantID is the job ID the tasks package gives this payload.
func wantID(t *testing.T, typ, payload string, opts ...tasks.Option) string {
	t.Helper()
	task, err := tasks.FromJSON(typ, []byte(payload), opts...)
	if err != nil {
		t.Fatalf("build %s: %v", typ, err)
	}
	return task.ID
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("stdout is not the JSON shape %T: %v\n%s", v, err, s)
	}
	return v
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"--json", "help"}, {"enqueue", "-h"}, {"dlq", "help"}, {"status", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runWith(nil, "", args...) // help needs no REDIS_URL
			if r.code != 0 {
				t.Fatalf("exit: got %d, want 0 (stderr %q)", r.code, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("stderr: got %q, want nothing", r.stderr)
			}
			for _, typ := range tasks.Types() {
				if !strings.Contains(r.stdout, typ.Name) {
					t.Errorf("usage: got no %s in\n%s", typ.Name, r.stdout)
				}
			}
			for _, cmd := range []string{"enqueue <type> --payload", "status <id>", "stats", "dlq list [--limit N]", "dlq requeue <id>", "--json", "REDIS_URL"} {
				if !strings.Contains(r.stdout, cmd) {
					t.Errorf("usage: got no %q in\n%s", cmd, r.stdout)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	f := setup(t)
	good := releasePayload("esc-usage", "jane.doe@example.com")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown global flag", []string{"--verbose", "stats"}, "-verbose"},
		{"enqueue without type", []string{"enqueue", "--payload", good}, "missing the job type"},
		{"enqueue without payload", []string{"enqueue", "send_release_email"}, "missing --payload"},
		{"enqueue two types", []string{"enqueue", "send_release_email", "audit_log_created", "--payload", good}, "extra"},
		{"enqueue bad duration", []string{"enqueue", "send_release_email", "--payload", good, "--in", "soon"}, "-in"},
		{"enqueue negative delay", []string{"enqueue", "send_release_email", "--payload", good, "--in", "-5s"}, "--in must not be negative"},
		{"enqueue empty dedupe key", []string{"enqueue", "send_release_email", "--payload", good, "--dedupe-key", ""}, "--dedupe-key"},
		{"enqueue unknown flag", []string{"enqueue", "send_release_email", "--payload", good, "--queue", "low"}, "-queue"},
		{"enqueue flag without value", []string{"enqueue", "send_release_email", "--payload"}, "-payload"},
		{"status without id", []string{"status"}, "missing the job ID"},
		{"status two ids", []string{"status", "a:1", "b:2"}, "extra"},
		{"stats with argument", []string{"stats", "default"}, "takes no arguments"},
		{"dlq without subcommand", []string{"dlq"}, "list, show, requeue or discard"},
		{"dlq list bad state", []string{"dlq", "list", "--state", "closed"}, "--state"},
		{"dlq list bad since", []string{"dlq", "list", "--since", "yesterday"}, "--since"},
		{"dlq list unknown type", []string{"dlq", "list", "--type", "send_mail"}, "--type"},
		{"dlq requeue id and filters", []string{"dlq", "requeue", "a:b", "--type", "audit_log_created"}, "not both"},
		{"dlq discard without reason", []string{"dlq", "discard", "a:b"}, "--reason is required"},
		{"dlq unknown subcommand", []string{"dlq", "purge"}, `"purge"`},
		{"dlq list zero limit", []string{"dlq", "list", "--limit", "0"}, "--limit must be"},
		{"dlq list bad limit", []string{"dlq", "list", "--limit", "many"}, "-limit"},
		{"dlq requeue without id", []string{"dlq", "requeue"}, "missing the job ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.run(tc.args...)
			if r.code != 2 {
				t.Fatalf("exit: got %d, want 2 (stderr %q)", r.code, r.stderr)
			}
			checkOneLine(t, r, tc.want, "jobctl help")
			if r.stdout != "" {
				t.Errorf("stdout: got %q, want nothing", r.stdout)
			}
		})
	}
	f.checkEmpty()
}

func TestEnqueue(t *testing.T) {
	f := setup(t)
	dir := t.TempDir()
	payload := func(tx string) string { return releasePayload(tx, "jane.doe@example.com") }
	file := filepath.Join(dir, "payload.json")
	if err := os.WriteFile(file, []byte(payload("esc-file")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	audit := `{"eventId":"evt-1","actor":"ops.bot","action":"release","occurredAt":"2025-01-02T03:04:05Z","metadata":{"note":"x"}}`
	capture := `{"transactionId":"esc-cap","paymentIntentId":"pi_123abc"}`
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		json  bool
		id    string // the job ID to expect
		queue string
	}{
		{"inline JSON", []string{"enqueue", "send_release_email", "--payload", payload("esc-inline")}, "", false,
			wantID(t, "send_release_email", payload("esc-inline")), "default"},
		{"@file", []string{"enqueue", "send_release_email", "--payload", "@" + file}, "", false,
			wantID(t, "send_release_email", payload("esc-file")), "default"},
		{"stdin", []string{"enqueue", "send_release_email", "--payload", "-"}, payload("esc-stdin"), false,
			wantID(t, "send_release_email", payload("esc-stdin")), "default"},
		{"flags before the type", []string{"enqueue", "--payload=" + payload("esc-before"), "send_release_email"}, "", false,
			wantID(t, "send_release_email", payload("esc-before")), "default"},
		{"dedupe key", []string{"enqueue", "send_release_email", "--payload", payload("esc-key"), "--dedupe-key", "escrow-esc-key-release"}, "", false,
			"send_release_email:escrow-esc-key-release", "default"},
		{"--json before the command", []string{"--json", "enqueue", "stripe_capture_payment", "--payload", capture}, "", true,
			"stripe_capture_payment:capture-pi_123abc", "critical"},
		{"--json after the command", []string{"enqueue", "audit_log_created", "--payload", audit, "--json"}, "", true,
			"audit_log_created:audit-evt-1", "low"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runWith(f.env, tc.stdin, tc.args...)
			if r.code != 0 {
				t.Fatalf("exit: got %d, want 0 (stderr %q)", r.code, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("stderr: got %q, want nothing", r.stderr)
			}
			got := strings.TrimSpace(r.stdout)
			if tc.json {
				res := decode[map[string]any](t, r.stdout)
				if len(res) != 1 {
					t.Errorf("JSON: got %v, want only {\"id\"}", res)
				}
				got, _ = res["id"].(string)
			}
			if got != tc.id {
				t.Errorf("id: got %q, want %q", got, tc.id)
			}
			ti := f.taskInfo(tc.queue, tc.id)
			if ti.State != asynq.TaskStatePending {
				t.Errorf("state in Redis: got %s, want pending", ti.State)
			}
			if ti.MaxRetry != retry.Max {
				t.Errorf("maxRetry in Redis: got %d, want %d", ti.MaxRetry, retry.Max)
			}
		})
	}
}

func TestEnqueueRejects(t *testing.T) {
	f := setup(t)
	missing := filepath.Join(t.TempDir(), "nope.json")
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		wants []string
	}{
		{"bad e-mail", []string{"enqueue", "send_release_email", "--payload", releasePayload("esc-1", "not-an-address")},
			"", []string{"invalid send_release_email payload: recipientEmail: must be a valid e-mail address"}},
		{"every bad field named", []string{"enqueue", "send_release_email", "--payload", `{"transactionId":"bad id!","recipientEmail":"x","amount":0,"currency":"usd"}`},
			"", []string{"transactionId", "recipientEmail", "amount", "currency"}},
		{"missing field", []string{"enqueue", "stripe_capture_payment", "--payload", `{"transactionId":"esc-1"}`},
			"", []string{"paymentIntentId: is required"}},
		{"unknown field", []string{"enqueue", "stripe_capture_payment", "--payload", `{"transactionId":"esc-1","paymentIntentId":"pi_1","amount":5}`},
			"", []string{"amount: is not a field of stripe_capture_payment"}},
		{"not JSON", []string{"enqueue", "send_release_email", "--payload", `{"transactionId": nope}`},
			"", []string{"payload: is not valid JSON"}},
		{"truncated JSON", []string{"enqueue", "send_release_email", "--payload", `{"transactionId":`},
			"", []string{"payload: must be a JSON object"}},
		{"empty stdin", []string{"enqueue", "send_release_email", "--payload", "-"},
			"", []string{"payload: is empty"}},
		{"missing file", []string{"enqueue", "send_release_email", "--payload", "@" + missing},
			"", []string{"payload file", "nope.json"}},
		{"bad dedupe key", []string{"enqueue", "send_release_email", "--payload", releasePayload("esc-1", "jane@example.com"), "--dedupe-key", "has space"},
			"", []string{"dedupeKey"}},
		{"unknown type", []string{"enqueue", "send_sms", "--payload", `{}`},
			"", []string{`unknown job type "send_sms"`, "send_release_email", "stripe_capture_payment", "audit_log_created", "notify_dispute_resolved"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runWith(f.env, tc.stdin, tc.args...)
			if r.code != 1 {
				t.Fatalf("exit: got %d, want 1 (stderr %q)", r.code, r.stderr)
			}
			checkOneLine(t, r, tc.wants...)
			if strings.Contains(r.stderr, "not-an-address") {
				t.Errorf("stderr: got %q, want no field values", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout: got %q, want nothing", r.stdout)
			}
			f.checkEmpty()
		})
	}
}

func TestEnqueueDuplicate(t *testing.T) {
	f := setup(t)
	id := f.enqueueRelease("esc-dup")
	p := releasePayload("esc-dup", "jane.doe@example.com")

	r := f.run("enqueue", "send_release_email", "--payload", p)
	if r.code != 0 {
		t.Fatalf("duplicate: got exit %d, want 0 (stderr %q)", r.code, r.stderr)
	}
	if got := strings.TrimSpace(r.stdout); got != id {
		t.Errorf("duplicate stdout: got %q, want the existing id %q", got, id)
	}
	checkOneLine(t, r, "duplicate: job "+id+" already exists")

	r = f.run("--json", "enqueue", "send_release_email", "--payload", p)
	if r.code != 0 {
		t.Fatalf("duplicate --json: got exit %d, want 0 (stderr %q)", r.code, r.stderr)
	}
	res := decode[enqueueResult](t, r.stdout)
	if want := (enqueueResult{ID: id, Duplicate: true}); res != want {
		t.Errorf("duplicate --json: got %+v, want %+v", res, want)
	}
	checkOneLine(t, r, "duplicate")

	qi, err := f.inspector.GetQueueInfo("default")
	if err != nil {
		t.Fatal(err)
	}
	if qi.Size != 1 {
		t.Errorf("default queue size: got %d, want 1", qi.Size)
	}
}

func TestEnqueueIn(t *testing.T) {
	f := setup(t)
	p := releasePayload("esc-later", "jane.doe@example.com")
	id := wantID(t, "send_release_email", p)
	before := time.Now()
	r := f.run("enqueue", "send_release_email", "--payload", p, "--in", "10s")
	after := time.Now()
	if r.code != 0 {
		t.Fatalf("exit: got %d, want 0 (stderr %q)", r.code, r.stderr)
	}
	ti := f.taskInfo("default", id)
	if ti.State != asynq.TaskStateScheduled {
		t.Errorf("state in Redis: got %s, want scheduled", ti.State)
	}
	// 10 s from the moment jobctl enqueued, which lies between before and
	// after; Redis keeps whole seconds.
	earliest, latest := before.Add(10*time.Second).Truncate(time.Second), after.Add(10*time.Second)
	if next := ti.NextProcessAt; next.Before(earliest) || next.After(latest) {
		t.Errorf("next process at: got %s, want 10s after the enqueue, between %s and %s", next, earliest, latest)
	}

	r = f.run("status", id, "--json")
	if r.code != 0 {
		t.Fatalf("status: got exit %d, want 0 (stderr %q)", r.code, r.stderr)
	}
	if j := decode[tasks.Job](t, r.stdout); j.State != "scheduled" || j.NextProcessAt == nil {
		t.Errorf("status --json: got state %q nextProcessAt %v, want scheduled with a time", j.State, j.NextProcessAt)
	}
}

func TestStatus(t *testing.T) {
	f := setup(t)
	id := f.enqueueRelease("esc-status")

	t.Run("table", func(t *testing.T) {
		r := f.run("status", id)
		if r.code != 0 {
			t.Fatalf("exit: got %d, want 0 (stderr %q)", r.code, r.stderr)
		}
		for _, want := range []string{"id:", id, "type:", "send_release_email", "queue:", "default", "state:", "pending", "attempts:", "max retry:", "3", "j***@example.com"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout: got\n%s\nwant it to contain %q", r.stdout, want)
			}
		}
		if strings.Contains(r.stdout, "jane.doe@example.com") {
			t.Errorf("stdout: got\n%s\nwant the e-mail address masked", r.stdout)
		}
	})

	t.Run("json", func(t *testing.T) {
		r := f.run("--json", "status", id)
		if r.code != 0 {
			t.Fatalf("exit: got %d, want 0 (stderr %q)", r.code, r.stderr)
		}
		raw := decode[map[string]any](t, r.stdout)
		for _, k := range []string{"id", "state", "type", "queue", "attempts", "maxRetry"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("JSON: got %v, want key %q", raw, k)
			}
		}
		j := decode[tasks.Job](t, r.stdout)
		if j.ID != id || j.State != "pending" || j.Queue != "default" || j.Attempts != 0 || j.MaxRetry != 3 {
			t.Errorf("JSON: got %+v, want id %s pending in default, 0 attempts, maxRetry 3", j, id)
		}
	})

	t.Run("unknown id", func(t *testing.T) {
		r := f.run("status", "send_release_email:escrow-nope")
		if r.code != 1 {
			t.Fatalf("exit: got %d, want 1 (stderr %q)", r.code, r.stderr)
		}
		checkOneLine(t, r, "send_release_email:escrow-nope", "not found")
	})
}

func TestStats(t *testing.T) {
	f := setup(t)
	for i := range 2 {
		f.enqueueRelease(fmt.Sprintf("esc-stats-%d", i))
	}
	if r := f.run("enqueue", "stripe_capture_payment", "--payload", `{"transactionId":"esc-s","paymentIntentId":"pi_stats"}`, "--in", "1m"); r.code != 0 {
		t.Fatalf("enqueue: got exit %d, want 0 (stderr %q)", r.code, r.stderr)
	}

	t.Run("table", func(t *testing.T) {
		r := f.run("stats")
		if r.code != 0 {
			t.Fatalf("exit: got %d, want 0 (stderr %q)", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 4 {
			t.Fatalf("stdout: got %d lines, want a header and 3 queues:\n%s", len(lines), r.stdout)
		}
		header := strings.Fields(lines[0])
		for _, col := range []string{"QUEUE", "PENDING", "ACTIVE", "SCHEDULED", "RETRY", "ARCHIVED", "COMPLETED"} {
			if !slices.Contains(header, col) {
				t.Errorf("header: got %q, want column %s", lines[0], col)
			}
		}
		rows := map[string][]string{}
		for _, l := range lines[1:] {
			fs := strings.Fields(l)
			rows[fs[0]] = fs
		}
		for _, tc := range []struct {
			queue              string
			pending, scheduled string
		}{{"critical", "0", "1"}, {"default", "2", "0"}, {"low", "0", "0"}} {
			row, ok := rows[tc.queue]
			if !ok {
				t.Errorf("stats: got no row for queue %s:\n%s", tc.queue, r.stdout)
				continue
			}
			if row[1] != tc.pending || row[3] != tc.scheduled {
				t.Errorf("queue %s: got pending %s scheduled %s, want %s and %s", tc.queue, row[1], row[3], tc.pending, tc.scheduled)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		r := f.run("stats", "--json")
		if r.code != 0 {
			t.Fatalf("exit: got %d, want 0 (stderr %q)", r.code, r.stderr)
		}
		qs := decode[[]tasks.QueueStats](t, r.stdout)
		var names []string
		for _, q := range qs {
			names = append(names, q.Queue)
			if q.Queue == "default" && q.Pending != 2 {
				t.Errorf("default pending: got %d, want 2", q.Pending)
			}
		}
		if want := []string{"critical", "default", "low"}; !slices.Equal(names, want) {
			t.Errorf("queues: got %v, want %v", names, want)
		}
	})
}

// archive makes ids dead letters the way production does: a worker whose
// handler fails permanently records them in the ledger (one at a time, so
// they fail in the order given).
func (f *fixture) archive(ids ...string) {
	f.t.Helper()
	opt, err := asynq.ParseRedisURI(f.url)
	if err != nil {
		f.t.Fatal(err)
	}
	l, err := deadletter.OpenFile(f.env["DEAD_LETTER_PATH"])
	if err != nil {
		f.t.Fatal(err)
	}
	defer l.Close()
	w, err := worker.New(worker.Config{Redis: opt, DeadLetters: l, Concurrency: 1, FetchLoops: 1, Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: time.Second},
		asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			return fmt.Errorf("smtp: 550 mailbox jane.doe@example.com unavailable: %w", asynq.SkipRetry)
		}))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		f.t.Fatalf("start worker: %v", err)
	}
	defer w.Shutdown()
	for _, id := range ids {
		deadline := time.Now().Add(10 * time.Second)
		for {
			e, err := l.Get(context.Background(), id)
			if err == nil && e.State == deadletter.StateOpen {
				break
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("job %s: not a dead letter within 10s (last %+v, %v)", id, e, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	p := releasePayload("esc-cfg", "jane.doe@example.com")
	commands := [][]string{{"enqueue", "send_release_email", "--payload", p}, {"status", "a:b"}, {"stats"}, {"dlq", "requeue", "a:b"}}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		wants []string
	}{
		{"unset", map[string]string{}, []string{"REDIS_URL"}},
		{"not a Redis URL", map[string]string{"REDIS_URL": "http://:hunter22@example.com"}, []string{"REDIS_URL"}},
		{"bad replica count", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_WAIT_REPLICAS": "-2"}, []string{"REDIS_WAIT_REPLICAS"}},
	} {
		for _, args := range commands {
			t.Run(tc.name+"/"+args[0], func(t *testing.T) {
				r := runWith(tc.env, "", args...)
				if r.code != 1 {
					t.Fatalf("exit: got %d, want 1 (stderr %q)", r.code, r.stderr)
				}
				checkOneLine(t, r, tc.wants...)
				if strings.Contains(r.stderr, "hunter22") {
					t.Errorf("stderr: got %q, want no password", r.stderr)
				}
			})
		}
	}
}

func TestRedisDown(t *testing.T) {
	// A port that was free a moment ago: nothing answers there.
	env := map[string]string{"REDIS_URL": "redis://:s3cretpass@" + peertest.Addr(peertest.FreePort(t)) + "/0"}
	for _, args := range [][]string{
		{"enqueue", "send_release_email", "--payload", releasePayload("esc-down", "jane.doe@example.com")},
		{"status", "send_release_email:escrow-x"},
		{"stats"},
		{"dlq", "requeue", "send_release_email:escrow-x"},
	} {
		t.Run(strings.Join(args[:min(2, len(args))], " "), func(t *testing.T) {
			r := runWith(env, "", args...)
			if r.code == 0 {
				t.Fatalf("exit: got 0, want non-zero (stdout %q)", r.stdout)
			}
			// A guard against hanging, not a timing claim: every command
			// has a deadline of a few seconds.
			if r.took > 15*time.Second {
				t.Errorf("took %s, want it to give up within its deadline", r.took)
			}
			checkOneLine(t, r)
			// go-redis retries a refused dial with backoff; on a loaded
			// machine the command's deadline can end those retries first.
			// Either way the one line says Redis is not there.
			if !strings.Contains(r.stderr, "connection refused") && !strings.Contains(r.stderr, "no answer from Redis") {
				t.Errorf("stderr: got %q, want it to say connection refused or no answer from Redis", r.stderr)
			}
			if strings.Contains(r.stderr, "s3cretpass") {
				t.Errorf("stderr: got %q, want no password", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout: got %q, want nothing", r.stdout)
			}
		})
	}
}

func TestRedisWrongPassword(t *testing.T) {
	srv := peertest.StartRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	if err := rc.ConfigSet(context.Background(), "requirepass", "right-horse-battery").Err(); err != nil {
		t.Fatalf("set requirepass: %v", err)
	}
	env := map[string]string{"REDIS_URL": "redis://:wrong-horse-battery@" + srv.Addr() + "/0"}
	for _, args := range [][]string{
		{"enqueue", "send_release_email", "--payload", releasePayload("esc-auth", "jane.doe@example.com")},
		{"stats"},
	} {
		t.Run(args[0], func(t *testing.T) {
			r := runWith(env, "", args...)
			if r.code != 1 {
				t.Fatalf("exit: got %d, want 1 (stderr %q)", r.code, r.stderr)
			}
			checkOneLine(t, r, "WRONGPASS")
			if strings.Contains(r.stderr, "wrong-horse-battery") {
				t.Errorf("stderr: got %q, want no password", r.stderr)
			}
		})
	}
}
