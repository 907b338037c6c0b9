package observe_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

const apiToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestHistoryListsEveryJobOfAnEscrow: one escrow (a 64-character ID) gets
// a job of each of the nine types, the dispute fan-out adds three, one
// job fails permanently (a dead letter, then removed from asynq's archive
// so only the durable log knows it) and one more is scheduled for later.
// The monitor's GET /api/v1/transactions/{id}/jobs and jobctl history
// --json list exactly those thirteen jobs, oldest first, with their states,
// and none of another escrow's.
func TestHistoryListsEveryJobOfAnEscrow(t *testing.T) {
	t.Parallel()
	redisURL := peertest.Redis(t)
	opt, _ := asynq.ParseRedisURI(redisURL)
	client := tasks.NewClient(opt)
	defer client.Close()
	insp := tasks.NewInspector(opt)
	defer insp.Close()

	seq := strings.Repeat("h", 60)
	tx := "esc-" + seq // 64 characters, the longest ID there is
	var order []string // the nine, in the order enqueued
	want := map[string]string{}
	var auditID string
	mine := escrowtest.All(seq)
	for i, p := range mine {
		if n, ok := p.(payloads.NotifyDisputeResolved); ok {
			// The fan-out derives a webhook eventId from the dispute ID
			// ("dispute-<id>-resolved"), so that one must stay short.
			n.DisputeID = "dsp-short"
			mine[i] = n
		}
	}
	for _, p := range append(slices.Clone(mine), escrowtest.All("other-escrow")...) {
		task := escrowtest.Task(t, p)
		if _, err := client.Enqueue(t.Context(), task); err != nil {
			t.Fatal(err)
		}
		if e, _ := p.(payloads.Escrowed); e.EscrowID() != tx {
			continue
		}
		order = append(order, task.ID)
		want[task.ID] = "completed"
		if _, ok := p.(payloads.AuditLogCreated); ok {
			auditID, want[task.ID] = task.ID, "archived"
		}
		time.Sleep(2 * time.Millisecond) // distinct enqueue times
	}
	ad := escrowtest.NewAdapters()
	ad.FailWith(func(id string, _ int) error {
		if id == auditID {
			return fmt.Errorf("injected audit failure: %w", asynq.SkipRetry)
		}
		return nil
	})
	dl := escrowtest.StartWorker(t, escrowtest.WorkerConfig{Redis: opt, Adapters: ad, Enqueuer: client})

	fanout := []string{}
	for _, p := range mine {
		if n, ok := p.(payloads.NotifyDisputeResolved); ok {
			fanout = append(fanout,
				"send_dispute_email:dispute-"+n.DisputeID+"-resolved-"+payloads.RecipientHash(n.BuyerEmail),
				"send_dispute_email:dispute-"+n.DisputeID+"-resolved-"+payloads.RecipientHash(n.SellerEmail),
				"webhook_escrow_status_changed:event-dispute-"+n.DisputeID+"-resolved")
		}
	}
	for _, id := range fanout {
		want[id] = "completed"
	}
	for id, state := range want {
		escrowtest.AwaitState(t, insp, id, state, 30*time.Second)
	}
	// The dead letter leaves asynq's archive: only the durable log has it.
	if err := insp.Asynq().DeleteTask(payloads.QueueOf(payloads.AuditLogCreated{}), auditID); err != nil {
		t.Fatal(err)
	}
	later := escrowtest.Task(t, mine[1], tasks.DedupeKey("refund-"+seq+"-later"), tasks.ProcessIn(time.Hour))
	if _, err := client.Enqueue(t.Context(), later); err != nil {
		t.Fatal(err)
	}
	want[later.ID] = "scheduled"

	api := startMonitor(t, monitor.Config{RedisOpt: opt, APIToken: apiToken, DeadLetters: dl})

	var got tasks.EscrowHistory
	raw := get(t, api+"/api/v1/transactions/"+tx+"/jobs", apiToken, http.StatusOK)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	if got.TransactionID != tx {
		t.Errorf("transactionId: got %q, want %q", got.TransactionID, tx)
	}
	var ids []string
	for _, j := range got.Jobs {
		ids = append(ids, j.ID)
		if j.State != want[j.ID] {
			t.Errorf("%s: got state %q, want %q", j.ID, j.State, want[j.ID])
		}
		if j.EnqueuedAt == nil {
			t.Errorf("%s: no enqueuedAt", j.ID)
		}
		if (j.ID == auditID) != (j.DeadLetter != nil) {
			t.Errorf("%s: got deadLetter %+v, want one only for the audit job", j.ID, j.DeadLetter)
		}
	}
	// Oldest first: the nine as enqueued, the fan-out (enqueued by the
	// worker, in any order among themselves), the scheduled one.
	if len(ids) != len(want) {
		t.Fatalf("got %d jobs %q, want %d", len(ids), ids, len(want))
	}
	if !slices.Equal(ids[:9], order) {
		t.Errorf("first nine: got %q, want %q", ids[:9], order)
	}
	if fan := slices.Sorted(slices.Values(ids[9:12])); !slices.Equal(fan, slices.Sorted(slices.Values(fanout))) {
		t.Errorf("jobs 10-12: got %q, want the fan-out %q", ids[9:12], fanout)
	}
	if ids[12] != later.ID {
		t.Errorf("last: got %q, want the scheduled %q", ids[12], later.ID)
	}
	for i := 1; i < len(got.Jobs); i++ {
		if got.Jobs[i].EnqueuedAt.Before(*got.Jobs[i-1].EnqueuedAt) {
			t.Errorf("job %d (%s) enqueued at %s, before job %d at %s", i, ids[i], got.Jobs[i].EnqueuedAt, i-1, got.Jobs[i-1].EnqueuedAt)
		}
	}
	for _, j := range got.Jobs {
		if j.ID == auditID {
			if j.DeadLetter.Why != "permanent" || !strings.Contains(j.LastError, "injected audit failure") || j.Attempts != 1 {
				t.Errorf("dead letter: got %+v (attempts %d, last error %q), want permanent after 1 attempt with the injected error", j.DeadLetter, j.Attempts, j.LastError)
			}
		}
	}

	// Errors: no token, a bad ID.
	get(t, api+"/api/v1/transactions/"+tx+"/jobs", "", http.StatusUnauthorized)
	get(t, api+"/api/v1/transactions/"+strings.Repeat("x", 65)+"/jobs", apiToken, http.StatusBadRequest)

	// jobctl history --json prints the same answer.
	jobctl := peertest.Binary(t, "./cmd/jobctl")
	p := peertest.Start(t, jobctl, []string{"REDIS_URL=" + redisURL, "DEAD_LETTER_PATH=" + dl.Path()}, "--json", "history", tx)
	if err, done := p.Wait(30 * time.Second); !done || err != nil {
		t.Fatalf("jobctl history: exit %v (done %v):\n%s", err, done, p.Output())
	}
	var cli tasks.EscrowHistory
	if err := json.Unmarshal([]byte(p.Output()), &cli); err != nil {
		t.Fatalf("jobctl history --json: %v:\n%s", err, p.Output())
	}
	a, _ := json.Marshal(cli)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Errorf("jobctl history --json:\n got %s\nwant %s (the API's answer)", a, b)
	}
	// The table lists them in the same order.
	p = peertest.Start(t, jobctl, []string{"REDIS_URL=" + redisURL, "DEAD_LETTER_PATH=" + dl.Path()}, "history", tx)
	if err, done := p.Wait(30 * time.Second); !done || err != nil {
		t.Fatalf("jobctl history: exit %v (done %v):\n%s", err, done, p.Output())
	}
	lines := strings.Split(strings.TrimSpace(p.Output()), "\n")
	if len(lines) != len(ids)+1 {
		t.Fatalf("jobctl history: got %d lines, want a header and %d jobs:\n%s", len(lines), len(ids), p.Output())
	}
	for i, id := range ids {
		if !strings.Contains(lines[i+1]+" ", " "+id+" ") {
			t.Errorf("jobctl history line %d: got %q, want job %s", i+1, lines[i+1], id)
		}
	}
}

// get GETs url with the bearer token (none when empty), checks the status
// and returns the body.
func get(t *testing.T, url, token string, wantStatus int) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != wantStatus {
		t.Fatalf("GET %s: got %d %s, want %d", url, res.StatusCode, body, wantStatus)
	}
	return body
}
