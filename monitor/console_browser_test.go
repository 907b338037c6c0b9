// The fuzz runs of scripts/test build with -tags fuzzing: chromedp's
// generated protocol packages take minutes to build with the fuzzer's
// coverage instrumentation, and no fuzz target needs a browser.

//go:build !fuzzing

package monitor_test

import (
	"context"
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/peertest"
)

// browser starts headless Chromium (a fresh profile, nothing leaves
// loopback) whose every request carries the test user's Basic auth, and
// returns its context. A missing Chromium fails the test naming the
// command that installs it.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := peertest.LookPath(t, "chromium", chromiumInstall)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPassword))
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
		return err
	})); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do runs browser steps with a deadline.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// textOf is the visible text of the first element sel matches.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// screenshot writes the page as PNG to $CONSOLE_SCREENSHOTS/name (only
// when the variable names a directory: the pictures in docs/img are made
// this way).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", filepath.Join(dir, name), len(b))
}

// TestConsoleInChromium drives the console in headless Chromium: the
// dead-letters page, one dead letter opened from it, its requeue form and
// another's discard form filled in and submitted, and what each rendered;
// the failed flow and the partners page; read-only mode without forms.
// CONSOLE_SCREENSHOTS=dir saves the pages shown in docs/operations.md.
func TestConsoleInChromium(t *testing.T) {
	ctx := browser(t)
	f := setup(t)
	toRequeue, toDiscard := f.enqueue(t, "esc-5001"), f.enqueue(t, "esc-5002")
	f.archive(t, toRequeue, toDiscard)
	flowID, captureID := f.failedFlow(t, "esc-5003")
	st := f.knownPartners(t, "acme", "globex", "initech")
	f.registry(t, []string{"acme", "globex", "initech"}, "globex")
	if err := st.Disable(context.Background(), "initech", "410 Gone from https://hooks.initech.example/escrow"); err != nil {
		t.Fatal(err)
	}

	do(t, ctx, "load the dead letters", chromedp.Navigate(f.url+"/console/dead-letters"), chromedp.WaitVisible(chromedp.CSS("table.list")))
	list := textOf(t, ctx, "table.list")
	for _, want := range []string{toRequeue, toDiscard, captureID, maskedEmail, "charge_expired_for_capture"} {
		if !strings.Contains(list, want) {
			t.Errorf("the dead letters page lacks %q: %s", want, list)
		}
	}
	if strings.Contains(list, rawEmail) {
		t.Errorf("the dead letters page shows %s", rawEmail)
	}
	screenshot(t, ctx, "console-dead-letters.png")

	// Open one from the list and requeue it with a reason.
	do(t, ctx, "open "+toRequeue,
		chromedp.Click(chromedp.CSS(`a[href="`+detailPath(toRequeue)+`"]`)),
		chromedp.WaitVisible(chromedp.ID("requeue")))
	if h := textOf(t, ctx, "h1"); h != "Dead letter "+toRequeue {
		t.Errorf("got heading %q, want the full job ID", h)
	}
	do(t, ctx, "requeue",
		chromedp.SendKeys(chromedp.ID("requeue-reason"), "smtp relay is back"),
		chromedp.Click(chromedp.ID("requeue")),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	if msg := textOf(t, ctx, ".flash"); msg != "Job "+toRequeue+" requeued by "+testUser+"." {
		t.Errorf("after the requeue the page says %q", msg)
	}
	if runs := textOf(t, ctx, "table.runs"); !strings.Contains(runs, "requeued") || !strings.Contains(runs, "smtp relay is back") || !strings.Contains(runs, testUser) {
		t.Errorf("the runs do not show the requeue: %s", runs)
	}
	if e := f.entry(t, toRequeue); e.State != deadletter.StateRequeued || e.Actor != testUser || e.Reason != "smtp relay is back" {
		t.Errorf("the ledger holds %+v", e)
	}
	screenshot(t, ctx, "console-dead-letter-requeued.png")

	// Discard the other one.
	do(t, ctx, "open "+toDiscard, chromedp.Navigate(f.url+detailPath(toDiscard)), chromedp.WaitVisible(chromedp.ID("discard")))
	do(t, ctx, "discard",
		chromedp.SendKeys(chromedp.ID("discard-reason"), "escrow refunded by hand"),
		chromedp.Click(chromedp.ID("discard")),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	if msg := textOf(t, ctx, ".flash"); msg != "Job "+toDiscard+" discarded by "+testUser+"." {
		t.Errorf("after the discard the page says %q", msg)
	}
	if e := f.entry(t, toDiscard); e.State != deadletter.StateDiscarded || e.Reason != "escrow refunded by hand" {
		t.Errorf("the ledger holds %+v", e)
	}

	// The failed flow and the partners.
	do(t, ctx, "the failed flow", chromedp.Navigate(f.url+"/console/flows/"+url.PathEscape(flowID)), chromedp.WaitVisible(chromedp.CSS("ol.steps")))
	if steps := textOf(t, ctx, "ol.steps"); !strings.Contains(steps, "blocked") || !strings.Contains(steps, "charge_expired_for_capture") {
		t.Errorf("the flow's steps: %s", steps)
	}
	screenshot(t, ctx, "console-flow-failed.png")
	do(t, ctx, "the escrow", chromedp.Navigate(f.url+"/console/escrows/esc-5003"), chromedp.WaitVisible(chromedp.CSS("table.list")))
	if story := textOf(t, ctx, "table.list"); !strings.Contains(story, captureID) || !strings.Contains(story, "dead letter (permanent)") {
		t.Errorf("the escrow page: %s", story)
	}
	screenshot(t, ctx, "console-escrow.png")
	do(t, ctx, "the partners", chromedp.Navigate(f.url+"/console/partners"), chromedp.WaitVisible(chromedp.CSS("table.list")))
	if p := textOf(t, ctx, "table.list"); !strings.Contains(p, "initech") || !strings.Contains(p, "disabled") || !strings.Contains(p, "healthy") ||
		!strings.Contains(p, "Waiting in order") || !strings.Contains(p, "yes") {
		t.Errorf("the partners page: %s", p)
	}
	screenshot(t, ctx, "console-partners.png")

	// Read-only: the same pages without a single form that changes anything.
	ro := setup(t, func(c *monitor.Config) { c.ReadOnly = true })
	id := ro.enqueue(t, "esc-5101")
	ro.archive(t, id)
	for _, path := range []string{"/console/dead-letters", detailPath(id), "/console/partners"} {
		do(t, ctx, "read-only "+path, chromedp.Navigate(ro.url+path), chromedp.WaitVisible(chromedp.CSS("footer")))
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[method="post"], form[action^="/console/actions/"]').length`))
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("read-only %s renders %d action forms", path, n)
		}
		if footer := textOf(t, ctx, "footer"); !strings.Contains(footer, "read-only") {
			t.Errorf("read-only %s: the footer says %q", path, footer)
		}
	}
}
