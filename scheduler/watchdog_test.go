package scheduler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/scheduler"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

const alertSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// receivedAlert is one verified alert.
type receivedAlert struct {
	id    string
	alert scheduler.Alert
}

// alertBody accepts a JSON scheduler.Alert and nothing else.
func alertBody(r *http.Request, body []byte) error {
	var a scheduler.Alert
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil || r.Header.Get("Content-Type") != "application/json" {
		return fmt.Errorf("body %s (Content-Type %q): %v", body, r.Header.Get("Content-Type"), err)
	}
	return nil
}

// newReceiver is an alert endpoint that verifies each request with
// webhook.Verify (checked against the Standard Webhooks test vector, not
// the scheduler's own signer) and accepts only alert bodies.
func newReceiver(t *testing.T, secret string) *escrowtest.Receiver {
	t.Helper()
	return escrowtest.StartReceiver(t, secret, alertBody)
}

// alertsOf returns the verified alerts rcv got, in order, and why it
// refused the other requests.
func alertsOf(t *testing.T, rcv *escrowtest.Receiver) (alerts []receivedAlert, rejected []string) {
	t.Helper()
	for _, d := range rcv.Received() {
		var a scheduler.Alert
		if err := json.Unmarshal(d.Body, &a); err != nil {
			t.Fatalf("alert %s: %v", d.ID, err)
		}
		alerts = append(alerts, receivedAlert{id: d.ID, alert: a})
	}
	_, rejected = rcv.Deliveries()
	return alerts, rejected
}

// archive enqueues n webhook jobs on the default queue and archives them
// all at once.
func archive(t *testing.T, opt asynq.RedisConnOpt, n int) {
	t.Helper()
	c := tasks.NewClient(opt)
	defer c.Close()
	for i := range n {
		task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
			EventID: fmt.Sprintf("evt-%d-%d", time.Now().UnixNano(), i), PartnerID: "acme", TransactionID: "esc-1",
			PreviousStatus: "funded", Status: "released", OccurredAt: "2026-01-01T00:00:00Z",
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Enqueue(context.Background(), task); err != nil {
			t.Fatal(err)
		}
	}
	in := asynq.NewInspector(opt)
	defer in.Close()
	if got, err := in.ArchiveAllPendingTasks(payloads.QueueDefault); err != nil || got != n {
		t.Fatalf("archive: got %d, %v, want %d archived", got, err, n)
	}
}

// checked is the set of periods (Unix seconds) the watchdog of l has checked.
func checked(l *logs) map[int64]bool {
	out := map[int64]bool{}
	for _, r := range l.with("dead-letter watchdog checked") {
		p, _ := time.Parse(time.RFC3339, r.attrs["period"].(string))
		out[p.Unix()] = true
	}
	return out
}

// waitCommonCheck waits until every watchdog has checked the same period P
// with at least 400 ms left before P+interval, and returns P: a change made
// now is seen by all of them first at P+interval.
func waitCommonCheck(t *testing.T, interval time.Duration, rs ...*running) time.Time {
	t.Helper()
	var p time.Time
	escrowtest.Eventually(t, "a period checked by every watchdog", 10*time.Second, func() bool {
		latest := time.Now().Truncate(interval)
		for _, r := range rs {
			if !checked(r.logs)[latest.Unix()] {
				return false
			}
		}
		p = latest
		return time.Until(p.Add(interval)) > 400*time.Millisecond
	})
	return p
}

func dataErrors(rs ...*running) []record {
	var out []record
	for _, r := range rs {
		out = append(out, r.logs.with("dead letters growing")...)
	}
	return out
}

// Two watchdogs see the archive grow in the same period: one alert is
// logged and posted, signed; when nothing grows any more, none follows.
func TestWatchdogAlertsOnceWhenDeadLettersGrow(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t)
	rcv := newReceiver(t, alertSecret)
	cfg := scheduler.Config{Redis: opt, WatchdogInterval: time.Second, ArchivedThreshold: 100,
		AlertURL: rcv.URL + "/alerts", AlertSecret: alertSecret}
	a, b := start(t, cfg), start(t, cfg)

	p := waitCommonCheck(t, time.Second, a, b)
	if got := dataErrors(a, b); len(got) != 0 {
		t.Fatalf("before any dead letter: got alerts %v, want none", got)
	}
	archive(t, opt, 3)
	end := p.Add(3 * time.Second)
	escrowtest.Eventually(t, "two quiet checks after the alert", 10*time.Second, func() bool {
		return checked(a.logs)[end.Unix()] && checked(b.logs)[end.Unix()]
	})
	a.stop()
	b.stop()

	alerts, rejected := alertsOf(t, rcv)
	if len(rejected) > 0 {
		t.Errorf("receiver rejected %d requests: %q", len(rejected), rejected)
	}
	if len(alerts) != 1 {
		t.Fatalf("got %d alerts posted, want 1: %+v", len(alerts), alerts)
	}
	got := alerts[0]
	if got.alert.Type != scheduler.AlertType || got.alert.Queue != "default" || got.alert.Archived != 3 ||
		got.alert.Previous == nil || *got.alert.Previous != 0 || got.alert.Threshold != 100 {
		t.Errorf("got alert %+v (previous %v), want type %s, queue default, archived 3, previous 0, threshold 100",
			got.alert, got.alert.Previous, scheduler.AlertType)
	}
	if want := fmt.Sprintf("dl-default-%d", p.Add(time.Second).Unix()); got.id != want {
		t.Errorf("got webhook-id %q, want %q", got.id, want)
	}
	if at := got.alert.At; at.Before(p) || at.After(p.Add(2*time.Second)) {
		t.Errorf("got at %s, want within the period after %s", at, p)
	}

	logged := dataErrors(a, b)
	if len(logged) != 1 {
		t.Fatalf("got %d %q log lines across both processes, want 1", len(logged), "dead letters growing")
	}
	r := logged[0]
	want := map[string]any{"queue": "default", "archived": int64(3), "previous": int64(0), "threshold": int64(100)}
	for k, v := range want {
		if r.attrs[k] != v {
			t.Errorf("log attr %s: got %v (%T), want %v", k, r.attrs[k], r.attrs[k], v)
		}
	}
	if r.level.String() != "ERROR" {
		t.Errorf("got level %s, want ERROR", r.level)
	}
	delivered := len(a.logs.with("dead-letter alert delivered")) + len(b.logs.with("dead-letter alert delivered"))
	if delivered != 1 {
		t.Errorf("got %d deliveries logged, want 1", delivered)
	}
	for _, r := range []*running{a, b} {
		if strings.Contains(r.logs.text(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
			t.Errorf("the alert secret is in the logs")
		}
	}
}

// Over the threshold, the watchdogs alert every period though nothing
// grows, and two of them still alert once per period.
func TestWatchdogAlertsEveryPeriodOverThreshold(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t)
	archive(t, opt, 3)
	rcv := newReceiver(t, alertSecret)
	cfg := scheduler.Config{Redis: opt, WatchdogInterval: time.Second, ArchivedThreshold: 2,
		AlertURL: rcv.URL, AlertSecret: alertSecret}
	a, b := start(t, cfg), start(t, cfg)
	escrowtest.Eventually(t, "three periods checked by both", 10*time.Second, func() bool {
		return len(checked(a.logs)) >= 3 && len(checked(b.logs)) >= 3
	})
	a.stop()
	b.stop()

	alerts, rejected := alertsOf(t, rcv)
	if len(rejected) > 0 {
		t.Errorf("receiver rejected %d requests: %q", len(rejected), rejected)
	}
	if len(alerts) < 3 {
		t.Fatalf("got %d alerts, want one for each of at least 3 periods", len(alerts))
	}
	ids := map[string]int{}
	for _, al := range alerts {
		ids[al.id]++
		if al.alert.Queue != "default" || al.alert.Archived != 3 || al.alert.Threshold != 2 {
			t.Errorf("got alert %+v, want queue default, archived 3, threshold 2", al.alert)
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("alert %s: got %d posts, want 1 (two watchdogs, one alert per period)", id, n)
		}
	}
	slices.SortFunc(alerts, func(x, y receivedAlert) int { return strings.Compare(x.id, y.id) })
	if first := alerts[0].alert; first.Previous != nil {
		t.Errorf("first alert: got previous %d, want null (no previous check)", *first.Previous)
	}
	if last := alerts[len(alerts)-1].alert; last.Previous == nil || *last.Previous != 3 {
		t.Errorf("last alert: got previous %v, want 3", last.Previous)
	}
}

// A failed alert POST is logged (without the secret or the URL's token) and
// the watchdog goes on.
func TestWatchdogAlertFailureIsLogged(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t)
	archive(t, opt, 2)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
	}))
	t.Cleanup(refusing.Close)
	for _, tc := range []struct {
		name, url, wantMsg string
	}{
		{"receiver answers 500", refusing.URL + "/hook?token=sekrit-token", "dead-letter alert refused"},
		{"nothing listens", "http://" + peertest.Addr(peertest.FreePort(t)) + "/hook?token=sekrit-token", "dead-letter alert not delivered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, scheduler.Config{Redis: opt, WatchdogInterval: time.Second, ArchivedThreshold: 1,
				AlertURL: tc.url, AlertSecret: alertSecret})
			escrowtest.Eventually(t, "the failure logged and two more checks", 10*time.Second, func() bool {
				return len(r.logs.with(tc.wantMsg)) >= 1 && len(checked(r.logs)) >= 2
			})
			r.stop()
			if got := r.logs.with(tc.wantMsg)[0]; got.level.String() != "ERROR" || got.attrs["queue"] != "default" {
				t.Errorf("got %s %v, want ERROR with queue default", got.level, got.attrs)
			}
			text := r.logs.text()
			for _, secret := range []string{"sekrit-token", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
				if strings.Contains(text, secret) {
					t.Errorf("the logs contain %q:\n%s", secret, text)
				}
			}
		})
	}
}
