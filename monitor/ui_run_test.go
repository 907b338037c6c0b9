package monitor_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Every Run route of asynqmon, posted for a job that has completed (asynq
// keeps it an hour for dedupe), leaves it completed and never runs it
// again: asynq would move it by the state in its hash, whatever the route
// says. Stale rows of it in the scheduled, retry and group sets (a page
// out of date) do not make the run-all routes move it either.
func TestUIRunRoutesNeverRunACompletedJob(t *testing.T) {
	url := peertest.Redis(t)
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	f := setupOn(t, opt)
	ctx := context.Background()
	var runs atomic.Int32
	w, err := worker.New(worker.Config{Redis: f.redisOpt, DeadLetters: f.ledger, Concurrency: 2, FetchLoops: 1,
		Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: time.Second},
		asynq.HandlerFunc(func(context.Context, *asynq.Task) error { runs.Add(1); return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	id := f.enqueue(t, "esc-900")
	f.waitState(t, id, "completed")
	const q, g = "default", "g"
	rc := peertest.RedisClient(t, url)
	later := float64(time.Now().Add(24 * time.Hour).Unix()) // never due while the test runs
	for _, key := range []string{asynqkey.Scheduled(q), asynqkey.Retry(q), asynqkey.Group(q, g)} {
		if err := rc.ZAdd(ctx, key, redis.Z{Score: later, Member: id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rc.SAdd(ctx, asynqkey.Groups(q), g).Err(); err != nil {
		t.Fatal(err)
	}

	batch := fmt.Sprintf(`{"task_ids":[%q]}`, id)
	tests := []struct {
		path       string
		body       string
		wantStatus int
		wantBody   string // a part of the answer's body
	}{
		{"/archived_tasks/" + id + ":run", "", http.StatusNotFound, ""},
		{"/archived_tasks:batch_run", batch, http.StatusOK, `"error_ids":["` + id + `"]`},
		{"/archived_tasks:run_all", "", http.StatusOK, `"scheduled":0`},
		{"/scheduled_tasks/" + id + ":run", "", http.StatusConflict, "completed, not scheduled"},
		{"/scheduled_tasks:batch_run", batch, http.StatusOK, `"error_ids":["` + id + `"]`},
		{"/scheduled_tasks:run_all", "", http.StatusOK, `"scheduled":0`},
		{"/retry_tasks/" + id + ":run", "", http.StatusConflict, "completed, not retry"},
		{"/retry_tasks:batch_run", batch, http.StatusOK, `"error_ids":["` + id + `"]`},
		{"/retry_tasks:run_all", "", http.StatusOK, `"scheduled":0`},
		{"/groups/" + g + "/aggregating_tasks/" + id + ":run", "", http.StatusConflict, "completed, not aggregating"},
		{"/groups/" + g + "/aggregating_tasks:batch_run", batch, http.StatusOK, `"error_ids":["` + id + `"]`},
		{"/groups/" + g + "/aggregating_tasks:run_all", "", http.StatusOK, `"scheduled":0`},
		{"/pending_tasks/" + id + ":run", "", http.StatusNotFound, ""},
		{"/completed_tasks/" + id + ":run", "", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		path := "/monitor/api/queues/" + q + tt.path
		a := f.do(t, request{method: "POST", path: path, body: tt.body, user: testUser, pass: testPassword})
		if a.status != tt.wantStatus || !strings.Contains(string(a.body), tt.wantBody) {
			t.Errorf("POST %s: got %d %s, want %d with %s", path, a.status, a.body, tt.wantStatus, tt.wantBody)
		}
		if j, err := f.inspector.Status(ctx, id); err != nil || j.State != "completed" {
			t.Errorf("after POST %s: got state %q (%v), want completed", path, j.State, err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // a rerun would show up within this
	if n := runs.Load(); n != 1 {
		t.Errorf("got %d runs, want 1", n)
	}
}

// The Run routes of scheduled, retry and aggregating jobs move a job that
// is in the state its row shows to pending, as asynqmon does.
func TestUIRunRoutesMoveAJobInTheirState(t *testing.T) {
	url := peertest.Redis(t)
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	f := setupOn(t, opt)
	c := asynq.NewClient(opt)
	defer c.Close()
	tests := []struct {
		name string
		opt  asynq.Option
		path func(id string) string
	}{
		{"scheduled", asynq.ProcessIn(time.Hour), func(id string) string { return "/scheduled_tasks/" + id + ":run" }},
		{"scheduled, all", asynq.ProcessIn(time.Hour), func(string) string { return "/scheduled_tasks:run_all" }},
		{"aggregating", asynq.Group("g"), func(id string) string { return "/groups/g/aggregating_tasks/" + id + ":run" }},
		{"aggregating, batch", asynq.Group("g"), func(string) string { return "/groups/g/aggregating_tasks:batch_run" }},
	}
	for i, tt := range tests {
		id := fmt.Sprint("audit_log_created:run-", i)
		if _, err := c.Enqueue(asynq.NewTask("audit_log_created", []byte(`{}`)), asynq.TaskID(id), tt.opt); err != nil {
			t.Fatal(err)
		}
		path := "/monitor/api/queues/default" + tt.path(id)
		a := f.do(t, request{method: "POST", path: path, body: fmt.Sprintf(`{"task_ids":[%q]}`, id), user: testUser, pass: testPassword})
		if a.status >= 300 {
			t.Errorf("%s: POST %s: got %d %s, want success", tt.name, path, a.status, a.body)
		}
		if j, err := f.inspector.Status(context.Background(), id); err != nil || j.State != "pending" {
			t.Errorf("%s: got state %q (%v), want pending", tt.name, j.State, err)
		}
	}
}
