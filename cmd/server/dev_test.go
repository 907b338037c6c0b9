package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// devServer is `server -dev …` running in-process.
type devServer struct {
	out, errOut peertest.Buffer
	url         string // the REDIS_URL it printed
	insp        *tasks.Inspector
}

var exportRedisURL = regexp.MustCompile(`export REDIS_URL=(\S+)`)

// startDev runs `server -dev` with args (and a free monitor port) until the
// test ends, and waits for the REDIS_URL it prints.
func startDev(t *testing.T, args ...string) *devServer {
	t.Helper()
	d := &devServer{}
	// METRICS_ADDR on a free port: parallel tests would race for 9090.
	env := envOf(map[string]string{"METRICS_ADDR": "127.0.0.1:0"})
	runUntilCleanup(t, append([]string{"-dev", "-monitor-addr", "127.0.0.1:0"}, args...), env, &d.out, &d.errOut, 15*time.Second)
	escrowtest.Eventually(t, "the dev server prints its REDIS_URL", 15*time.Second, func() bool {
		if m := exportRedisURL.FindStringSubmatch(d.out.String()); m != nil {
			d.url = m[1]
		}
		return d.url != ""
	})
	opt, err := asynq.ParseRedisURI(d.url)
	if err != nil {
		t.Fatalf("printed REDIS_URL %q: %v", d.url, err)
	}
	d.insp = tasks.NewInspector(opt)
	t.Cleanup(func() { d.insp.Close() })
	return d
}

// port is the port of the printed REDIS_URL.
func (d *devServer) port(t *testing.T) int {
	t.Helper()
	m := regexp.MustCompile(`^redis://127\.0\.0\.1:(\d+)/0$`).FindStringSubmatch(d.url)
	if m == nil {
		t.Fatalf("printed REDIS_URL %q, want redis://127.0.0.1:<port>/0", d.url)
	}
	p, _ := strconv.Atoi(m[1])
	return p
}

// works checks that the printed REDIS_URL reaches the dev worker: a job
// enqueued through it completes.
func (d *devServer) works(t *testing.T) {
	t.Helper()
	opt, _ := asynq.ParseRedisURI(d.url)
	c := tasks.NewClient(opt)
	defer c.Close()
	task := escrowtest.Task(t, escrowtest.Direct("dev", 0))
	if _, err := c.Enqueue(context.Background(), task); err != nil {
		t.Fatalf("enqueue through the printed REDIS_URL %s: %v", d.url, err)
	}
	escrowtest.AwaitState(t, d.insp, task.ID, "completed", 15*time.Second)
}

// SPEC §5: -dev starts its store on 127.0.0.1:6379, or on a free port when
// 6379 is taken, and prints the REDIS_URL to export. This machine (and CI)
// may run a real Redis on 6379; the test takes the port itself when it is
// free, so the fallback is what runs either way.
func TestDevFallsBackToAFreePortWhen6379IsTaken(t *testing.T) {
	if l, err := net.Listen("tcp", "127.0.0.1:6379"); err == nil {
		t.Cleanup(func() { l.Close() })
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("check 127.0.0.1:6379: %v", err)
	}
	d := startDev(t) // no -dev-redis-addr: the default, 127.0.0.1:6379
	if p := d.port(t); p == 6379 {
		t.Fatalf("printed REDIS_URL %s with 6379 taken, want a free port", d.url)
	}
	d.works(t)
	if !strings.Contains(d.out.String(), "NOTHING SURVIVES A RESTART") {
		t.Errorf("stdout lacks the warning that nothing survives a restart: %q", d.out.String())
	}
}

// -dev-redis-addr with a free port: the store listens there and the
// printed REDIS_URL says so.
func TestDevRedisAddrIsUsedAndPrinted(t *testing.T) {
	want := peertest.FreePort(t)
	d := startDev(t, "-dev-redis-addr", peertest.Addr(want))
	if got := d.port(t); got != want {
		t.Errorf("printed REDIS_URL %s, want port %d from -dev-redis-addr", d.url, want)
	}
	d.works(t)
}

// An explicit -dev-redis-addr that is taken is an error naming it: only
// the default falls back.
func TestDevRedisAddrTakenIsAnError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out, errOut peertest.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = run(ctx, []string{"-dev", "-dev-redis-addr", l.Addr().String(), "-monitor-addr", "127.0.0.1:0"}, envOf(nil), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("got %v, want an error naming %s", err, l.Addr())
	}
}

// -demo enqueues a stream of sample escrow events, some failing on
// purpose: within the first seven events (one every 2 s) a capture marked
// flaky is retried, a refund marked declined is archived after one attempt
// and listed as a dead letter, and the other jobs complete.
func TestDemoShowsRetriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	d := startDev(t, "-demo", "-dev-redis-addr", "127.0.0.1:0")
	escrowtest.AwaitState(t, d.insp, "audit_log_created:audit-esc-0000-audit", "completed", 15*time.Second)
	flaky := escrowtest.AwaitState(t, d.insp, "stripe_capture_payment:capture-pi_flaky0005", "retry", 30*time.Second)
	if !strings.Contains(flaky.LastError, "demo failure") {
		t.Errorf("flaky capture: got last error %q, want the demo failure", flaky.LastError)
	}
	const declined = "stripe_refund_payment:refund-pi_declined0006-full"
	j := escrowtest.AwaitState(t, d.insp, declined, "archived", 30*time.Second)
	if j.Attempts != 1 || !strings.Contains(j.LastError, "demo failure") {
		t.Errorf("declined refund: got attempts %d, last error %q; want 1 and the demo failure", j.Attempts, j.LastError)
	}
	// The dead-letter ledger the dev server printed lists it.
	m := regexp.MustCompile(`export DEAD_LETTER_PATH=(\S+)`).FindStringSubmatch(d.out.String())
	if m == nil {
		t.Fatalf("no DEAD_LETTER_PATH printed: %q", d.out.String())
	}
	ledger, err := deadletter.OpenFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	var ids []string
	escrowtest.Eventually(t, declined+" in the ledger", 15*time.Second, func() bool {
		page, err := ledger.List(context.Background(), deadletter.Filter{}, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		ids = ids[:0]
		for _, dl := range page.Entries {
			ids = append(ids, dl.ID)
		}
		return slices.Contains(ids, declined)
	})
	for _, id := range ids {
		if !strings.Contains(id, "flaky") && !strings.Contains(id, "declined") {
			t.Errorf("dead letter %s: not a job marked to fail", id)
		}
	}
}

// -dev needs no configuration: the store, log adapters and the monitor
// (loopback, no login) come up, a job runs, and the dev mailer logs the
// e-mail it would send with the address masked.
func TestDevModeProcessesJobsWithNoConfiguration(t *testing.T) {
	d := startDev(t, "-dev-redis-addr", "127.0.0.1:0")
	if !strings.Contains(d.out.String(), "NOTHING SURVIVES A RESTART") {
		t.Errorf("stdout lacks the warning that nothing survives a restart: %q", d.out.String())
	}
	mon := regexp.MustCompile(`monitor: (http://\S+/monitor/)`).FindStringSubmatch(d.out.String())
	if mon == nil {
		t.Fatalf("no monitor URL printed: %q", d.out.String())
	}
	resp, err := http.Get(mon[1])
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: got %v %v, want 200", mon[1], resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	opt, _ := asynq.ParseRedisURI(d.url)
	c := tasks.NewClient(opt)
	defer c.Close()
	task := escrowtest.Task(t, payloads.SendReleaseEmail{TransactionID: "esc-dev", RecipientEmail: "dev.user@example.com", Amount: 1, Currency: "USD"})
	if _, err := c.Enqueue(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	escrowtest.AwaitState(t, d.insp, task.ID, "completed", 10*time.Second)
	escrowtest.Eventually(t, "the masked dev e-mail line", 5*time.Second, func() bool {
		logs := d.errOut.String()
		return strings.Contains(logs, "email not sent (dev mode)") && strings.Contains(logs, "d***@example.com")
	})
	if strings.Contains(d.errOut.String(), "dev.user@example.com") {
		t.Errorf("log contains the raw address")
	}
}

var printedMetrics = regexp.MustCompile(`metrics: (http://\S+)/metrics`)

// -dev serves the worker's /healthz, /readyz and /metrics as production
// does, prints where, and counts the jobs it ran by type.
func TestDevServesWorkerMetrics(t *testing.T) {
	t.Parallel()
	d := startDev(t)
	m := printedMetrics.FindStringSubmatch(d.out.String())
	if m == nil {
		t.Fatalf("no metrics address in the banner:\n%s", d.out.String())
	}
	base := m[1]
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, base+path); code != http.StatusOK {
			t.Errorf("GET %s: got %d %.200s, want 200", path, code, body)
		}
	}
	d.works(t) // one job of type direct e-mail, completed
	typ := escrowtest.Direct("dev", 0).TaskType()
	want := `escrowjobs_jobs_processed_total{type="` + typ + `"} 1`
	escrowtest.Eventually(t, "the job counted in /metrics", 10*time.Second, func() bool {
		_, body := httpGet(t, base+"/metrics")
		return strings.Contains(body, want)
	})
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b.String()
}

// -demo runs its escrow events as flows: the release of event 5, whose
// capture is marked flaky, is retried, dead-lettered and fails its flow;
// the seller's e-mail and the partner's webhook after it are blocked, and
// the flow is listed among the failed release flows. A good release flow
// completes.
func TestDemoShowsAFailedReleaseFlowWithBlockedSteps(t *testing.T) {
	t.Parallel()
	d := startDev(t, "-demo", "-dev-redis-addr", "127.0.0.1:0")
	store := flows.NewStore(peertest.RedisClient(t, d.url), d.insp)
	ctx := context.Background()
	escrowtest.Eventually(t, "release:esc-0000 to complete", 30*time.Second, func() bool {
		v, err := store.Status(ctx, "release:esc-0000")
		return err == nil && v.State == flows.StateCompleted
	})
	var failed flows.View
	escrowtest.Eventually(t, "release:esc-0005 among the failed release flows", 60*time.Second, func() bool {
		page, err := store.List(ctx, flows.Filter{State: flows.StateFailed, Name: "release"}, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Items {
			if v.ID == "release:esc-0005" {
				failed = v
				return true
			}
		}
		return false
	})
	want := map[string]string{"capture": flows.StepFailed, "seller-email": flows.StepBlocked, "partner-webhook": flows.StepBlocked, "audit": flows.StepCompleted}
	for _, st := range failed.Steps {
		if w, ok := want[st.Name]; ok && st.State != w {
			t.Errorf("release:esc-0005 step %s: got %s, want %s", st.Name, st.State, w)
		}
	}
	if name, lastErr := failed.FailedStep(); name != "capture" || !strings.Contains(lastErr, "demo failure") {
		t.Errorf("release:esc-0005 failed step: got %q (%q), want capture with the demo failure", name, lastErr)
	}
}
