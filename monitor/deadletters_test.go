package monitor_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/hibiken/asynq"
)

// withStore runs the monitor over the file ledger or PostgreSQL.
func withStore(t *testing.T, store string) func(*monitor.Config) {
	return func(c *monitor.Config) {
		if store == "postgres" {
			c.DeadLetters = escrowtest.Ledger(t, store)
		}
	}
}

func (f *fixture) list(t *testing.T, query string) monitor.DeadLetterList {
	t.Helper()
	a := f.api(t, "GET", "/api/v1/dead-letters"+query, "")
	if a.status != http.StatusOK {
		t.Fatalf("GET %s: got %d %s", query, a.status, a.body)
	}
	if strings.Contains(string(a.body), rawEmail) {
		t.Errorf("the list shows the raw address: %s", a.body)
	}
	var l monitor.DeadLetterList
	a.json(t, &l)
	return l
}

func itemIDs(l monitor.DeadLetterList) []string {
	var out []string
	for _, e := range l.Items {
		out = append(out, e.ID)
	}
	return out
}

// 150 dead letters: the first page is the 10 most recent, in order; paging
// reaches all 150 exactly once; filters return exactly the matching
// items; a job asynq has dropped is still listed and can be requeued.
func TestDeadLetterListPagesNewestFirst(t *testing.T) {
	for _, store := range []string{"file", "postgres"} {
		t.Run(store, func(t *testing.T) {
			f := setup(t, withStore(t, store))
			var ids []string
			for i := range 150 {
				ids = append(ids, f.enqueue(t, fmt.Sprintf("esc-%03d", i)))
			}
			f.archive(t, ids...) // one at a time: they fail in this order
			var newestFirst []string
			for i := len(ids) - 1; i >= 0; i-- {
				newestFirst = append(newestFirst, ids[i])
			}

			first := f.list(t, "?limit=10")
			if got := itemIDs(first); !slices.Equal(got, newestFirst[:10]) || first.Next == nil {
				t.Errorf("first page: got %v (next %v), want %v and a next cursor", got, first.Next, newestFirst[:10])
			}
			for _, e := range first.Items {
				if e.State != "open" || e.Why != "permanent" || e.Attempts != 1 || !strings.Contains(e.Error, maskedEmail) ||
					!strings.Contains(string(e.Payload), maskedEmail) || e.FailedAt.IsZero() {
					t.Errorf("got %+v, want open, permanent, 1 attempt, masked error and payload", e)
				}
			}
			for _, limit := range []int{10, 7, 1000} {
				var got []string
				for cursor := ""; ; {
					q := fmt.Sprintf("?limit=%d", limit)
					if cursor != "" {
						q += "&cursor=" + url.QueryEscape(cursor)
					}
					p := f.list(t, q)
					got = append(got, itemIDs(p)...)
					if p.Next == nil {
						break
					}
					cursor = *p.Next
				}
				if !slices.Equal(got, newestFirst) {
					t.Errorf("limit %d: got %d items %v, want all 150 newest first once", limit, len(got), got)
				}
			}

			// Filters.
			if _, err := f.ledger.MarkDiscarded(context.Background(), ids[3], deadletter.Resolution{Actor: "op", Reason: "dup", At: time.Now()}); err != nil {
				t.Fatal(err)
			}
			future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
			tests := []struct {
				query string
				want  []string
			}{
				{"?transactionId=esc-007", []string{ids[7]}},
				{"?state=discarded", []string{ids[3]}},
				{"?state=open&type=send_release_email&queue=default&limit=3", newestFirst[:3]},
				{"?type=audit_log_created", nil},
				{"?queue=critical", nil},
				{"?since=1h&limit=2", newestFirst[:2]},
				{"?since=" + future, nil},
				{"?partnerId=p-1", nil},
			}
			for _, tt := range tests {
				if got := itemIDs(f.list(t, tt.query)); !slices.Equal(got, tt.want) {
					t.Errorf("%s: got %v, want %v", tt.query, got, tt.want)
				}
			}

			// A job asynq dropped (as its trim would) is listed and requeued
			// from the ledger.
			dropped := ids[42]
			if err := asynq.NewInspector(f.redisOpt).DeleteTask("default", dropped); err != nil {
				t.Fatal(err)
			}
			if got := itemIDs(f.list(t, "?transactionId=esc-042")); !slices.Equal(got, []string{dropped}) {
				t.Errorf("dropped job: got %v, want it listed", got)
			}
			a := f.api(t, "POST", "/api/v1/dead-letters/"+dropped+"/requeue", `{"reason":"relay fixed"}`)
			var e deadletter.Entry
			a.json(t, &e)
			if a.status != http.StatusOK || e.State != "requeued" || e.Actor != "api" || e.Reason != "relay fixed" {
				t.Errorf("requeue of the dropped job: got %d %s, want 200 requeued by api", a.status, a.body)
			}
			if j := f.waitState(t, dropped, "pending"); j.MaxRetry != 3 || j.Attempts != 0 {
				t.Errorf("rebuilt job: got %+v, want 0 attempts of 3 retries", j)
			}
		})
	}
}

func TestDeadLetterListRejects(t *testing.T) {
	f := setup(t)
	tests := []struct{ query, field string }{
		{"?limit=0", "limit"}, {"?limit=1001", "limit"}, {"?limit=ten", "limit"}, {"?limit=", "limit"},
		{"?state=closed", "state"}, {"?type=send_mail", "type"}, {"?since=yesterday", "since"}, {"?until=-1h", "until"},
		{"?cursor=bm9wZQ", "cursor"}, {"?color=red", "color"},
	}
	for _, tt := range tests {
		a := f.api(t, "GET", "/api/v1/dead-letters"+tt.query, "")
		e := a.apiError(t)
		if a.status != http.StatusBadRequest || e.Error.Code != "invalid_request" || len(e.Error.Fields) == 0 || e.Error.Fields[0].Field != tt.field {
			t.Errorf("%s: got %d %s, want 400 invalid_request naming %s", tt.query, a.status, a.body, tt.field)
		}
	}
}

func TestRequeueAndDiscardThroughTheAPI(t *testing.T) {
	f := setup(t)
	one, two := f.enqueue(t, "esc-500"), f.enqueue(t, "esc-501")
	f.archive(t, one, two)

	a := f.api(t, "POST", "/api/v1/dead-letters/"+one+"/requeue", "")
	var e deadletter.Entry
	a.json(t, &e)
	if a.status != http.StatusOK || e.ID != one || e.State != "requeued" || e.Actor != "api" || e.ResolvedAt == nil {
		t.Fatalf("requeue: got %d %s, want 200 requeued by api", a.status, a.body)
	}
	if j := f.waitState(t, one, "pending"); j.Attempts != 0 || j.MaxRetry != 3 || j.LastError != "" {
		t.Errorf("got %+v, want pending with its full budget: 0 attempts, maxRetry 3, no last error", j)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"requeue again", "POST", "/api/v1/dead-letters/" + one + "/requeue", "", http.StatusConflict, "not_open", ""},
		{"requeue unknown", "POST", "/api/v1/dead-letters/send_release_email:nope/requeue", "", http.StatusNotFound, "not_found", ""},
		{"GET requeue", "GET", "/api/v1/dead-letters/" + one + "/requeue", "", http.StatusMethodNotAllowed, "method_not_allowed", ""},
		{"requeue with a bad body", "POST", "/api/v1/dead-letters/" + two + "/requeue", `{"why":"x"}`, http.StatusBadRequest, "invalid_request", "why"},
		{"discard without reason", "POST", "/api/v1/dead-letters/" + two + "/discard", `{}`, http.StatusBadRequest, "invalid_request", "reason"},
		{"discard with a two-line reason", "POST", "/api/v1/dead-letters/" + two + "/discard", `{"reason":"a\nb"}`, http.StatusBadRequest, "invalid_request", "reason"},
		{"show unknown", "GET", "/api/v1/dead-letters/send_release_email:nope", "", http.StatusNotFound, "not_found", ""},
	}
	for _, tt := range tests {
		a := f.api(t, tt.method, tt.path, tt.body)
		e := a.apiError(t)
		if a.status != tt.status || e.Error.Code != tt.code || (tt.field != "" && (len(e.Error.Fields) == 0 || e.Error.Fields[0].Field != tt.field)) {
			t.Errorf("%s: got %d %s, want %d %s %s", tt.name, a.status, a.body, tt.status, tt.code, tt.field)
		}
	}
	a = f.api(t, "POST", "/api/v1/dead-letters/"+two+"/discard", `{"reason":"refunded by hand"}`)
	a.json(t, &e)
	if a.status != http.StatusOK || e.State != "discarded" || e.Actor != "api" || e.Reason != "refunded by hand" {
		t.Errorf("discard: got %d %s, want 200 discarded by api", a.status, a.body)
	}
	a = f.api(t, "GET", "/api/v1/dead-letters/"+two, "")
	a.json(t, &e)
	if a.status != http.StatusOK || e.State != "discarded" || strings.Contains(string(a.body), rawEmail) {
		t.Errorf("show: got %d %s, want the discarded record, masked", a.status, a.body)
	}
	if a := f.api(t, "POST", "/api/v1/dead-letters/"+two+"/requeue", ""); a.status != http.StatusConflict {
		t.Errorf("requeue after discard: got %d %s, want 409", a.status, a.body)
	}
}

func TestBulkRequeueThroughTheAPI(t *testing.T) {
	f := setup(t)
	var ids []string
	for i := range 4 {
		ids = append(ids, f.enqueue(t, fmt.Sprintf("esc-b%d", i)))
	}
	f.archive(t, ids...)
	want := slices.Clone(ids)
	slices.Sort(want)
	body := `{"filter":{"type":"send_release_email","since":"1h"},"dryRun":true}`
	var b struct {
		Matched, Requeued int
		IDs               []string
	}
	a := f.api(t, "POST", "/api/v1/dead-letters/requeue", body)
	a.json(t, &b)
	slices.Sort(b.IDs)
	if a.status != http.StatusOK || b.Matched != 4 || b.Requeued != 0 || !slices.Equal(b.IDs, want) {
		t.Errorf("dry run: got %d %s, want 4 matched, 0 requeued", a.status, a.body)
	}
	f.waitState(t, ids[0], "archived")
	a = f.api(t, "POST", "/api/v1/dead-letters/requeue", strings.Replace(body, "true", "false", 1))
	a.json(t, &b)
	slices.Sort(b.IDs)
	if a.status != http.StatusOK || b.Matched != 4 || b.Requeued != 4 || !slices.Equal(b.IDs, want) {
		t.Errorf("real run: got %d %s, want 4 matched and requeued", a.status, a.body)
	}
	for _, id := range ids {
		f.waitState(t, id, "pending")
	}
	a = f.api(t, "POST", "/api/v1/dead-letters/requeue", `{"filter":{"since":"last week"}}`)
	if e := a.apiError(t); a.status != http.StatusBadRequest || len(e.Error.Fields) != 1 || e.Error.Fields[0].Field != "filter.since" {
		t.Errorf("bad filter: got %d %s, want 400 naming filter.since", a.status, a.body)
	}
}

// The UI's "Run" (one job, a selection, all of a queue) goes through the
// same requeue as the API: the full budget, and the ledger records the
// Basic-auth user.
func TestUIRunRequeuesAndRecordsTheUser(t *testing.T) {
	f := setup(t)
	one, two, three := f.enqueue(t, "esc-901"), f.enqueue(t, "esc-902"), f.enqueue(t, "esc-903")
	f.archive(t, one, two, three)
	check := func(id string) {
		t.Helper()
		j, err := f.inspector.Status(context.Background(), id)
		if err != nil || j.State != "pending" || j.Attempts != 0 || j.MaxRetry != 3 {
			t.Errorf("%s after Run: got %+v (%v), want pending with 0 attempts and maxRetry 3", id, j, err)
		}
		e, err := f.ledger.Get(context.Background(), id)
		if err != nil || e.State != deadletter.StateRequeued || e.Actor != testUser || e.Reason != "Run in the monitor UI" {
			t.Errorf("%s ledger: got %+v (%v), want requeued by %s", id, e, err, testUser)
		}
	}
	a := f.do(t, request{method: "POST", path: "/monitor/api/queues/default/archived_tasks/" + one + ":run", user: testUser, pass: testPassword})
	if a.status != http.StatusNoContent {
		t.Fatalf("run one: got %d %s, want 204", a.status, a.body)
	}
	check(one)
	a = f.do(t, request{method: "POST", path: "/monitor/api/queues/default/archived_tasks:batch_run", user: testUser, pass: testPassword,
		body: `{"task_ids":["` + two + `","send_release_email:missing"]}`})
	var batch struct {
		PendingIDs []string `json:"pending_ids"`
		ErrorIDs   []string `json:"error_ids"`
	}
	a.json(t, &batch)
	if a.status != http.StatusOK || len(batch.PendingIDs) != 1 || batch.PendingIDs[0] != two || len(batch.ErrorIDs) != 1 {
		t.Errorf("batch run: got %d %+v, want %s pending and one error", a.status, batch, two)
	}
	check(two)
	a = f.do(t, request{method: "POST", path: "/monitor/api/queues/default/archived_tasks:run_all", user: testUser, pass: testPassword})
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `"scheduled":1`) {
		t.Errorf("run all: got %d %s, want 200 with 1 requeued", a.status, a.body)
	}
	check(three)
	if a := f.do(t, request{method: "POST", path: "/monitor/api/queues/default/archived_tasks/" + one + ":run"}); a.status != http.StatusUnauthorized {
		t.Errorf("run without credentials: got %d, want 401", a.status)
	}
}

// A discard never lets the job run: a dead letter whose job ID is pending
// in Redis (not put there by a requeue of it) is not discarded; the API
// answers 409 conflict and nothing changes.
func TestDiscardOfAJobInAQueueIsAConflict(t *testing.T) {
	f := setup(t)
	id := f.enqueue(t, "esc-510")
	if _, err := f.ledger.Record(context.Background(), deadletter.Entry{ID: id, Type: "send_release_email", Queue: "default",
		Payload: []byte(`{}`), Why: deadletter.WhyPermanent, FailedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	a := f.api(t, "POST", "/api/v1/dead-letters/"+id+"/discard", `{"reason":"not needed"}`)
	if e := a.apiError(t); a.status != http.StatusConflict || e.Error.Code != "conflict" {
		t.Errorf("discard: got %d %s, want 409 conflict", a.status, a.body)
	}
	if j, err := f.inspector.Status(context.Background(), id); err != nil || j.State != "pending" {
		t.Errorf("got state %q (%v), want the job untouched (pending)", j.State, err)
	}
	if got, _ := f.ledger.Get(context.Background(), id); got.State != deadletter.StateOpen {
		t.Errorf("ledger: got %s, want open", got.State)
	}
}
