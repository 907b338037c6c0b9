package worker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/redis/go-redis/v9"
)

func TestDequeuedListRecognisesOnlyAsynqDequeue(t *testing.T) {
	keys := []any{"asynq:{low}:pending", "asynq:{low}:paused", "asynq:{low}:active", "asynq:{low}:lease"}
	args := func(name string, n int, ks ...any) []any {
		return append(append([]any{name, "sha", n}, ks...), int64(1), "asynq:{low}:t:")
	}
	cases := []struct {
		name string
		args []any
		want string
	}{
		{"evalsha", args("evalsha", 4, keys...), "asynq:{low}:pending"},
		{"eval after NOSCRIPT", args("eval", 4, keys...), "asynq:{low}:pending"},
		{"other script", args("evalsha", 2, "asynq:{low}:t:x", "asynq:{low}:pending"), ""},
		{"other keys", args("evalsha", 4, "asynq:{low}:active", "asynq:{low}:lease", "asynq:{low}:t:x", "asynq:{low}:processed"), ""},
		{"not asynq", args("evalsha", 4, "a:pending", "a:paused", "a:active", "a:lease"), ""},
		{"keys of two queues", args("evalsha", 4, "asynq:{low}:pending", "asynq:{low}:paused", "asynq:{high}:active", "asynq:{low}:lease"), ""},
		{"plain command", []any{"get", "asynq:{low}:pending"}, ""},
	}
	for _, c := range cases {
		got, ok := dequeuedList(c.args)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, ok, c.want)
		}
	}
}

// emptyFresh is the hook's window in this test: no wake-ups are heard.
const emptyFresh = time.Millisecond

// dequeueLike has the keys of asynq's dequeue script and pops one job.
var dequeueLike = redis.NewScript(`return redis.call("RPOPLPUSH", KEYS[1], KEYS[3])`)

func TestEmptyQueuesAnswerLikeTheScript(t *testing.T) {
	rc := redisClient(t, peertest.Redis(t))
	rc.AddHook(newEmptyQueues(rc, []string{"critical", "default", "low"}, emptyFresh, time.Minute))
	ctx := context.Background()
	queue := func(q string) []string {
		return []string{"asynq:{" + q + "}:pending", "asynq:{" + q + "}:paused", "asynq:{" + q + "}:active", "asynq:{" + q + "}:lease"}
	}
	dequeue := func(q string) (string, error) {
		return dequeueLike.Run(ctx, rc, queue(q), time.Now().Unix(), "asynq:{"+q+"}:t:").Text()
	}
	scripts := func() int64 {
		info, err := rc.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, line := range strings.Split(info, "\n") {
			for _, cmd := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd); ok {
					calls, _, _ := strings.Cut(rest, ",")
					c, err := strconv.ParseInt(calls, 10, 64)
					if err != nil {
						t.Fatalf("%q: %v", line, err)
					}
					n += c
				}
			}
		}
		return n
	}

	// Never looked at: the scripts run and find nothing.
	for _, q := range []string{"critical", "default", "low"} {
		if _, err := dequeue(q); !errors.Is(err, redis.Nil) {
			t.Fatalf("%s: got %v, want redis.Nil", q, err)
		}
	}
	before := scripts()
	// Known empty: answered without a script (right away or after one EXISTS).
	for _, q := range []string{"critical", "default", "low"} {
		if _, err := dequeue(q); !errors.Is(err, redis.Nil) {
			t.Fatalf("%s again: got %v, want redis.Nil", q, err)
		}
	}
	if got := scripts() - before; got != 0 {
		t.Errorf("known-empty queues ran %d scripts, want 0", got)
	}

	// A job arrives; once the belief is stale every queue is looked at and
	// the job comes out of its own queue, exactly once.
	if err := rc.LPush(ctx, "asynq:{default}:pending", "job-1").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * emptyFresh)
	var got []string
	for range 2 {
		for _, q := range []string{"critical", "default", "low"} {
			id, err := dequeue(q)
			switch {
			case err == nil:
				got = append(got, q+":"+id)
			case !errors.Is(err, redis.Nil):
				t.Fatalf("%s: %v", q, err)
			}
		}
		time.Sleep(2 * emptyFresh)
	}
	if len(got) != 1 || got[0] != "default:job-1" {
		t.Errorf("got %v, want [default:job-1]", got)
	}
}
