package main

// Partner delivery (SPEC §10) end to end: the real worker (run, in
// process) with real Redis, against verifying HTTP receivers, with the
// schedules shortened by configuration.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// regEntry is one partner of a test registry.
type regEntry struct {
	URL            string   `json:"url"`
	Secret         string   `json:"secret"`
	MaxConcurrency int      `json:"maxConcurrency,omitempty"`
	RatePerSecond  *float64 `json:"ratePerSecond,omitempty"`
}

// partnerEnv is one worker process's world: its Redis, registry file and
// environment.
type partnerEnv struct {
	t       testing.TB
	dir     string
	regPath string
	env     map[string]string
	redis   asynq.RedisConnOpt
	rc      redis.UniversalClient
	client  *tasks.Client
	insp    *tasks.Inspector
	logs    peertest.Buffer
}

// setupPartners writes the registry and the environment (overridden by
// env); start runs the worker.
func setupPartners(t testing.TB, partners map[string]regEntry, env map[string]string) *partnerEnv {
	t.Helper()
	dir := t.TempDir()
	e := &partnerEnv{t: t, dir: dir, regPath: filepath.Join(dir, "partners.json")}
	e.writeRegistry(partners)
	redisURL := peertest.Redis(t)
	e.env = map[string]string{
		"REDIS_URL": redisURL, "SMTP_URL": "smtp://127.0.0.1:1?tls=none", "MAIL_FROM": "escrow@example.com",
		"STRIPE_SECRET_KEY": "sk_test_partners", "WEBHOOK_ENDPOINTS_FILE": e.regPath, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
		"DEAD_LETTER_PATH": filepath.Join(dir, "dead-letters.jsonl"), "AUDIT_LOG_PATH": filepath.Join(dir, "audit.jsonl"),
		"WEBHOOK_REDELIVERY_SCHEDULE": "1s,2s", "WEBHOOK_BREAKER_PROBE": "1s", "WEBHOOK_TIMEOUT": "2s",
		"WEBHOOK_REGISTRY_POLL": "200ms", "WORKER_CONCURRENCY": "20", "LOG_LEVEL": "debug",
	}
	for k, v := range env {
		e.env[k] = v
	}
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	e.redis = opt
	e.rc = opt.MakeRedisClient().(redis.UniversalClient)
	e.client = tasks.NewClient(opt)
	e.insp = tasks.NewInspector(opt)
	t.Cleanup(func() { e.client.Close(); e.insp.Close(); e.rc.Close() })
	return e
}

// writeRegistry replaces the registry file atomically.
func (e *partnerEnv) writeRegistry(partners map[string]regEntry) {
	e.t.Helper()
	b, err := json.Marshal(map[string]any{"partners": partners})
	if err != nil {
		e.t.Fatal(err)
	}
	tmp := e.regPath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.regPath); err != nil {
		e.t.Fatal(err)
	}
}

// failUntilHealed makes recv answer status to every request until heal is
// called, and 204 after that.
func failUntilHealed(recv *escrowtest.Partner, status int) (heal func()) {
	var mu sync.Mutex
	healed := false
	recv.Answer(func(int) escrowtest.Answer {
		mu.Lock()
		defer mu.Unlock()
		if healed {
			return escrowtest.Answer{}
		}
		return escrowtest.Answer{Status: status}
	})
	return func() {
		mu.Lock()
		healed = true
		mu.Unlock()
	}
}

// start runs one worker process in-process until the test ends.
func (e *partnerEnv) start() {
	e.t.Helper()
	e.t.Cleanup(func() { // runs after the server stopped (cleanups run last first)
		if e.t.Failed() {
			e.t.Logf("server log (tail):\n%s", tail(e.logs.String(), 60))
		}
	})
	runUntilCleanup(e.t, []string{"-no-scheduler"}, envOf(e.env), &e.logs, &e.logs, 30*time.Second)
	// Started once the registry's partners are recorded in Redis.
	escrowtest.Eventually(e.t, "the worker to start", 10*time.Second, func() bool {
		n, _ := e.rc.SCard(context.Background(), "escrowjobs:partners").Result()
		return n > 0
	})
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// enqueue adds one status-changed webhook and returns its job ID.
func (e *partnerEnv) enqueue(eventID, partner string) string {
	e.t.Helper()
	task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
		EventID: eventID, PartnerID: partner, TransactionID: "esc-" + eventID[:min(len(eventID), 40)],
		PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: "2026-11-30T02:00:00Z",
	})
	if err != nil {
		e.t.Fatalf("build webhook %s: %v", eventID, err)
	}
	id, err := e.client.Enqueue(context.Background(), task)
	if err != nil {
		e.t.Fatalf("enqueue webhook %s: %v", eventID, err)
	}
	return id
}

// state returns a partner's status as GET /api/v1/partners shows it.
func (e *partnerEnv) state(partnerID string) partner.Status {
	e.t.Helper()
	st, err := partner.NewState(partner.StateConfig{Redis: e.rc, BreakerFailures: atoiOr(e.env["WEBHOOK_BREAKER_FAILURES"], 5)})
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := st.Status(context.Background(), partnerID)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func atoiOr(s string, def int) int {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return def
	}
	return n
}

// jobState is asynq's state of a job ("" when not found).
func (e *partnerEnv) jobState(id string) (string, string) {
	j, err := e.insp.Status(context.Background(), id)
	if err != nil {
		return "", ""
	}
	return j.State, j.LastError
}

// checkDeliveredOnce asserts every event reached the receiver verified,
// answered 2xx exactly once, with its event ID as webhook-id, and nothing
// else was delivered.
func checkDeliveredOnce(t *testing.T, r *escrowtest.Partner, events []string) {
	t.Helper()
	got := r.Delivered()
	for _, id := range events {
		if got[id] != 1 {
			t.Errorf("event %s: delivered %d times, want exactly once", id, got[id])
		}
	}
	for id, n := range got {
		if !slices.Contains(events, id) {
			t.Errorf("webhook-id %q delivered %d times: not one of the events' IDs", id, n)
		}
	}
	for _, q := range r.Requests() {
		if q.VerifyErr != nil {
			t.Errorf("request %s failed verification: %v", q.ID, q.VerifyErr)
		}
	}
}

func TestPartnerDownLongerThanOneRunGetsEveryEventOnce(t *testing.T) {
	t.Parallel()
	recv := escrowtest.StartPartner(t)
	var up sync.Once
	back := make(chan struct{})
	recv.Answer(func(int) escrowtest.Answer {
		select {
		case <-back:
			return escrowtest.Answer{Status: http.StatusOK}
		default:
			return escrowtest.Answer{Status: http.StatusBadGateway}
		}
	})
	// The circuit is kept out of the way (a high threshold): this test is
	// about redelivery after the 2/4/8 s run.
	e := setupPartners(t, map[string]regEntry{"acme": {URL: recv.URL, Secret: recv.Secret}},
		map[string]string{"WEBHOOK_BREAKER_FAILURES": "1000", "WEBHOOK_REDELIVERY_SCHEDULE": "1s,2s,3s"})
	// Two worker processes share the redelivery steps and the due set.
	e.start()
	e.start()

	events := []string{"evt-down-1", "evt-down-2", strings.Repeat("e", 64)}
	var jobs []string
	for _, ev := range events {
		jobs = append(jobs, e.enqueue(ev, "acme"))
	}
	// Every event fails its whole run (1 + 3 attempts, 14 s) and becomes a
	// dead letter; then the partner comes back.
	escrowtest.Eventually(e.t, "every event to be a dead letter", 40*time.Second, func() bool {
		for _, j := range jobs {
			if s, _ := e.jobState(j); s != "archived" {
				return false
			}
		}
		return true
	})
	perEvent := map[string]int{}
	for _, q := range recv.Requests() {
		perEvent[q.ID]++
	}
	for _, ev := range events {
		if perEvent[ev] != 4 {
			t.Errorf("event %s: %d attempts in its first run, want 4 (2/4/8 s schedule)", ev, perEvent[ev])
		}
	}
	up.Do(func() { close(back) })
	escrowtest.Eventually(e.t, "every event to be delivered by redelivery", 30*time.Second, func() bool {
		return len(recv.Delivered()) == len(events)
	})
	// Wait out any later redelivery step (3 s + 10 %) that could double.
	time.Sleep(4 * time.Second)
	checkDeliveredOnce(t, recv, events)
	for _, j := range jobs {
		if s, _ := e.jobState(j); s != "completed" {
			t.Errorf("job %s: state %q, want completed", j, s)
		}
	}
	if !strings.Contains(e.logs.String(), `"actor":"redelivery"`) {
		t.Errorf("no requeue with actor redelivery in the log")
	}
	// The ledger records each redelivery: requeued by "redelivery", step 1.
	ledger, err := deadletter.OpenFile(e.env["DEAD_LETTER_PATH"])
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	for _, j := range jobs {
		got, err := ledger.Get(context.Background(), j)
		if err != nil {
			t.Errorf("ledger %s: %v", j, err)
			continue
		}
		if got.State != deadletter.StateRequeued || got.Actor != partner.ActorRedelivery || !strings.Contains(got.Reason, "step 1") {
			t.Errorf("ledger %s: got %s by %q (%q), want requeued by %q at step 1", j, got.State, got.Actor, got.Reason, partner.ActorRedelivery)
		}
	}
}

func TestRedeliveryStopsAfterLastStepAndAlerts(t *testing.T) {
	t.Parallel()
	recv := escrowtest.StartPartner(t)
	recv.Answer(func(int) escrowtest.Answer { return escrowtest.Answer{Status: http.StatusServiceUnavailable} })
	e := setupPartners(t, map[string]regEntry{"acme": {URL: recv.URL, Secret: recv.Secret}},
		map[string]string{"WEBHOOK_BREAKER_FAILURES": "1000", "WEBHOOK_REDELIVERY_SCHEDULE": "1s"})
	e.start()
	job := e.enqueue("evt-exhaust", "acme")
	// Two runs of four attempts: the first and the one redelivery.
	escrowtest.Eventually(e.t, "the alert after the last step", 60*time.Second, func() bool {
		n, _ := e.rc.LLen(context.Background(), "escrowjobs:alerts:pending").Result()
		return n > 0
	})
	if n := len(recv.Requests()); n != 8 {
		t.Errorf("partner saw %d requests, want 8 (two runs of four)", n)
	}
	if s, _ := e.jobState(job); s != "archived" {
		t.Errorf("job state %q, want archived (an open dead letter)", s)
	}
	v, _ := e.rc.LIndex(context.Background(), "escrowjobs:alerts:pending", 0).Result()
	for _, want := range []string{partner.AlertRedeliveryExhausted, `"partner":"acme"`, job} {
		if !strings.Contains(v, want) {
			t.Errorf("alert %s: want it to contain %q", v, want)
		}
	}
}

// A hanging partner holds at most its maxConcurrency worker slots, across
// processes, so a healthy partner's job never waits for a slot it took: each
// healthy request arrives while the hanging partner holds no more than its
// 4 of the 12 slots, and every healthy event is delivered while the hanging
// partner's events still wait. (The throughput ratio this buys is measured
// by BenchmarkHangingPartnerThroughput.)
func TestHangingPartnerLeavesOthersTheirThroughput(t *testing.T) {
	t.Parallel()
	const maxConcurrency, perProcess, processes = 4, 6, 2
	hung := escrowtest.StartPartner(t)
	hung.Answer(func(int) escrowtest.Answer { return escrowtest.Answer{Hang: true} })
	healthy := escrowtest.StartPartner(t)
	var mu sync.Mutex
	var seen []int // the hanging partner's requests in flight at each healthy request
	healthy.Answer(func(int) escrowtest.Answer {
		mu.Lock()
		seen = append(seen, hung.InFlight())
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		return escrowtest.Answer{}
	})
	e := setupPartners(t, map[string]regEntry{
		"hung":    {URL: hung.URL, Secret: hung.Secret, MaxConcurrency: maxConcurrency},
		"healthy": {URL: healthy.URL, Secret: healthy.Secret, MaxConcurrency: 100},
	}, map[string]string{"WEBHOOK_TIMEOUT": "3s", "WEBHOOK_BREAKER_FAILURES": "1000", "WORKER_CONCURRENCY": fmt.Sprint(perProcess), "LOG_LEVEL": "info"})
	for range processes {
		e.start()
	}

	// Three times the worker slots of hanging events first, each request
	// holding until the sender's 3 s timeout, then the healthy ones.
	const hungEvents, healthyEvents = 3 * perProcess * processes, 40
	for i := range hungEvents {
		e.enqueue(fmt.Sprintf("evt-hung-%d", i), "hung")
	}
	escrowtest.Eventually(t, "the hanging partner to hold requests", 10*time.Second, func() bool { return hung.InFlight() > 0 })
	var ids []string
	for i := range healthyEvents {
		ids = append(ids, fmt.Sprintf("evt-ok-%d", i))
		e.enqueue(ids[i], "healthy")
	}
	escrowtest.Eventually(t, "the healthy events delivered", 60*time.Second, func() bool { return healthy.DeliveredCount() == healthyEvents })
	if got := len(hung.Requests()); got >= hungEvents {
		t.Errorf("the hanging partner got all its %d requests before the healthy events were delivered, want the healthy ones not to wait for them", got)
	}

	mu.Lock()
	defer mu.Unlock()
	saturated := 0
	for i, n := range seen {
		if n > maxConcurrency || n >= perProcess*processes {
			t.Errorf("healthy request %d: got the hanging partner holding %d requests (of %d worker slots), want at most its maxConcurrency %d", i, n, perProcess*processes, maxConcurrency)
		}
		if n > 0 {
			saturated++
		}
	}
	if saturated == 0 {
		t.Errorf("no healthy request arrived while the hanging partner held a slot (seen %v); the test proves nothing", seen)
	}
	t.Logf("hanging partner's requests in flight at each healthy request: %v", seen)
	if got := hung.MaxInFlight(); got > maxConcurrency || got == 0 {
		t.Errorf("hanging partner held at most %d requests at once, want 1 to its maxConcurrency %d", got, maxConcurrency)
	}
	checkDeliveredOnce(t, healthy, ids)
	if st := e.state("healthy"); st.State != partner.StateHealthy {
		t.Errorf("healthy partner state %q, want %q", st.State, partner.StateHealthy)
	}
}

// BenchmarkHangingPartnerThroughput measures what the test above
// guarantees by mechanism: the healthy webhooks and e-mails completed per
// 5 s window with a hanging partner, as a ratio of the window before it
// ("ratio"; about 0.8 or more on an idle machine, less on a busy one).
func BenchmarkHangingPartnerThroughput(b *testing.B) {
	hung := escrowtest.StartPartner(b)
	hung.Answer(func(int) escrowtest.Answer { return escrowtest.Answer{Hang: true} })
	healthy := escrowtest.StartPartner(b)
	// The healthy partner takes 200 ms to answer, so its throughput is
	// bound by worker slots (what a hanging partner could take away) more
	// than by the CPU the machine's other work competes for.
	healthy.Answer(func(int) escrowtest.Answer { time.Sleep(200 * time.Millisecond); return escrowtest.Answer{} })
	mail := peertest.StartMailpit(b)
	e := setupPartners(b, map[string]regEntry{
		"hung":    {URL: hung.URL, Secret: hung.Secret, MaxConcurrency: 4},
		"healthy": {URL: healthy.URL, Secret: healthy.Secret, MaxConcurrency: 100},
	}, map[string]string{"SMTP_URL": mail.SMTPURL(), "WEBHOOK_TIMEOUT": "1s", "WEBHOOK_BREAKER_PROBE": "1s", "WORKER_CONCURRENCY": "25", "LOG_LEVEL": "info"})
	// Two worker processes of 25: the hanging partner's 4 slots are
	// counted across both.
	e.start()
	e.start()

	// A producer keeps about 300 healthy webhooks (and one e-mail per
	// three webhooks) waiting, so the workers are never idle and a new job
	// waits less than a second; throughput is what completes in a window.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		webhooks := 0
		for n := 0; ctx.Err() == nil; n++ {
			if webhooks-healthy.DeliveredCount() > 300 {
				time.Sleep(5 * time.Millisecond)
				n--
				continue
			}
			var task *tasks.Task
			var err error
			if n%4 == 3 {
				task, err = tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{
					TransactionID: fmt.Sprintf("esc-%d", n), RecipientEmail: fmt.Sprintf("buyer-%d@example.com", n), Amount: 1000, Currency: "EUR",
				})
			} else {
				webhooks++
				task, err = tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
					EventID: fmt.Sprintf("evt-ok-%d", n), PartnerID: "healthy", TransactionID: fmt.Sprintf("esc-%d", n),
					PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: "2026-11-30T02:00:00Z",
				})
			}
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := e.client.Enqueue(ctx, task); err != nil {
				if ctx.Err() == nil {
					b.Error(err)
				}
				return
			}
		}
	})
	defer func() { stop(); wg.Wait() }()

	window := 5 * time.Second
	done := func() int { return healthy.DeliveredCount() + mailCount(e, mail) }
	measure := func() int {
		start := done()
		time.Sleep(window)
		return done() - start
	}
	time.Sleep(2 * time.Second) // warm up
	b.ResetTimer()
	baseline := measure()
	// Now the hanging partner gets 150 events (three times the worker
	// slots): each request hangs until the sender's 1 s timeout.
	for i := range 150 {
		e.enqueue(fmt.Sprintf("evt-hung-%d", i), "hung")
	}
	with := measure()
	b.StopTimer()
	b.ReportMetric(float64(with)/float64(max(baseline, 1)), "ratio")
	b.ReportMetric(float64(baseline)/window.Seconds(), "baseline-jobs/s")
	b.ReportMetric(float64(with)/window.Seconds(), "hanging-jobs/s")
}

// mailCount is how many mails mailpit holds.
func mailCount(e *partnerEnv, m *peertest.Mailpit) int {
	resp, err := http.Get(m.APIURL() + "/messages?limit=1")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var v struct {
		Total int `json:"total"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return v.Total
}

func TestOpenCircuitSendsOneProbePerIntervalAndClosesOnSuccess(t *testing.T) {
	t.Parallel()
	const probe = 2 * time.Second
	recv := escrowtest.StartPartner(t)
	heal := failUntilHealed(recv, http.StatusInternalServerError)
	e := setupPartners(t, map[string]regEntry{"acme": {URL: recv.URL, Secret: recv.Secret, MaxConcurrency: 4}},
		map[string]string{"WEBHOOK_BREAKER_FAILURES": "5", "WEBHOOK_BREAKER_PROBE": probe.String(), "WEBHOOK_REDELIVERY_SCHEDULE": "1s,1s,1s,1s"})
	// Two worker processes: the circuit and its probe are shared.
	e.start()
	e.start()
	// A steady stream: one new event every 250 ms until the partner is
	// back, so the request rate before and after the circuit opens
	// compare.
	var evMu sync.Mutex
	var events []string
	streamDone := make(chan struct{})
	stopStream := make(chan struct{})
	go func() {
		defer close(streamDone)
		for i := 0; ; i++ {
			ev := fmt.Sprintf("evt-probe-%03d", i)
			evMu.Lock()
			events = append(events, ev)
			evMu.Unlock()
			e.enqueue(ev, "acme")
			select {
			case <-stopStream:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	escrowtest.Eventually(e.t, "the circuit to open", 20*time.Second, func() bool { return e.state("acme").State == partner.StateOpen })
	openedAt := time.Now()
	before := recv.Requests()
	// Let it stay open for four probe intervals.
	time.Sleep(4*probe + probe/2)
	reqs := recv.Requests()
	after := reqs[len(before):]
	// Requests before the circuit opened, per minute: over the span from
	// the first request to the opening.
	span := openedAt.Sub(before[0].At)
	perMinBefore := float64(len(before)) / span.Minutes()
	perMinAfter := float64(len(after)) / time.Since(openedAt).Minutes()
	t.Logf("dead partner: %d requests in the %.1f s before the circuit opened (%.0f/min), %d in the %.1f s after (%.0f/min, probe interval %s)",
		len(before), span.Seconds(), perMinBefore, len(after), time.Since(openedAt).Seconds(), perMinAfter, probe)
	if len(after) == 0 || len(after) > 5 {
		t.Errorf("got %d requests in 4.5 probe intervals after the circuit opened, want 1 to 5 (one probe per interval)", len(after))
	}
	// At most one request per probe interval. The gate admits probes at
	// least an interval apart (Redis's clock); what the receiver sees can
	// be squeezed by a request that was slow to arrive on a loaded
	// machine, so each gap must be at least half an interval (a broken
	// circuit sends a request per waiting job, milliseconds apart) and no
	// window may hold more than one request per interval it spans, plus one.
	for i := 1; i < len(after); i++ {
		if gap := after[i].At.Sub(after[i-1].At); gap < probe/2 {
			t.Errorf("probes %d and %d arrived %s apart, want about the probe interval %s", i-1, i, gap, probe)
		}
	}
	for i := range after {
		for j := i + 1; j < len(after); j++ {
			span := after[j].At.Sub(after[i].At)
			if n, allowed := j-i+1, 1+int((span+probe/2)/probe); n > allowed {
				t.Errorf("%d probes within %s, want at most %d at one per %s", n, span, allowed, probe)
			}
		}
	}
	// The partner recovers: the next probe closes the circuit and the
	// waiting deliveries flow, each once.
	close(stopStream)
	<-streamDone
	heal()
	escrowtest.Eventually(e.t, "every event to be delivered after the circuit closed", 30*time.Second, func() bool {
		return len(recv.Delivered()) == len(events)
	})
	time.Sleep(2 * time.Second) // a late redelivery would double here
	checkDeliveredOnce(t, recv, events)
	if st := e.state("acme"); st.State != partner.StateHealthy || st.ConsecutiveFailures != 0 || st.LastSuccessAt == nil {
		t.Errorf("state after recovery: %+v, want healthy, 0 failures, a last success", st)
	}
}
