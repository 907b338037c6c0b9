package monitor_test

import (
	"bytes"
	"context"
	"html"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// ChromiumInstall is the command that installs the browser on Debian.
const chromiumInstall = "apt-get install -y chromium"

// screenshotPath is where UPDATE_SCREENSHOT=1 writes the UI's picture.
const screenshotPath = "../docs/monitor.png"

// chromium runs headless Chromium on url with extra arguments and returns
// its standard output. Nothing leaves loopback: every other host name
// resolves to nothing.
func chromium(t *testing.T, url string, extra ...string) []byte {
	t.Helper()
	bin := peertest.LookPath(t, "chromium", chromiumInstall)
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--no-first-run", "--disable-component-update",
		"--disable-sync", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=5000",
	}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	// Chromium forks helpers; stop the whole group, and do not wait on
	// pipes a stray helper might hold.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, lastLines(stderr.String(), 20))
	}
	return stdout.Bytes()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

var (
	styleOrScript = regexp.MustCompile(`(?s)<(style|script)\b.*?</(style|script)>`)
	tag           = regexp.MustCompile(`<[^>]+>`)
	space         = regexp.MustCompile(`\s+`)
)

// visibleText is the text of a dumped DOM, without markup, styles or scripts.
func visibleText(dom []byte) string {
	s := styleOrScript.ReplaceAllString(string(dom), " ")
	s = tag.ReplaceAllString(s, " ")
	return space.ReplaceAllString(html.UnescapeString(s), " ")
}

// TestBrowserShowsQueuesAndMaskedDeadLetters drives the real asynqmon UI in
// headless Chromium, logged in through Basic auth.
func TestBrowserShowsQueuesAndMaskedDeadLetters(t *testing.T) {
	f := setup(t)
	archived := f.enqueue(t, "esc-1001")
	f.archive(t, archived)
	// One job in each queue, so all three are listed.
	capture, _ := tasks.NewStripeCapturePaymentTask(payloads.StripeCapturePayment{TransactionID: "esc-1002", PaymentIntentID: "pi_1002"})
	audit, _ := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{EventID: "evt-1003", Actor: "ops", Action: "release", OccurredAt: "2026-01-02T03:04:05Z"})
	for _, task := range []*tasks.Task{capture, audit} {
		if _, err := f.client.Enqueue(context.Background(), task); err != nil {
			t.Fatal(err)
		}
	}
	base := strings.Replace(f.url, "http://", "http://"+testUser+":"+strings.ReplaceAll(testPassword, " ", "%20")+"@", 1)

	t.Run("401 without credentials", func(t *testing.T) {
		resp, err := http.Get(f.url + "/monitor/queues/default?status=archived")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("got %d, want 401", resp.StatusCode)
		}
	})

	t.Run("queue list", func(t *testing.T) {
		dom := chromium(t, base+"/monitor/", "--dump-dom")
		text := visibleText(dom)
		for _, q := range []string{"critical", "default", "low"} {
			if !bytes.Contains(dom, []byte(`href="/monitor/queues/`+q+`"`)) {
				t.Errorf("the queue list has no link to queue %s; text: %.1500s", q, text)
			}
		}
		if !strings.Contains(text, "Queues") {
			t.Errorf("got no rendered UI; text: %.1500s", text)
		}
	})

	t.Run("archived tasks, e-mail masked", func(t *testing.T) {
		dom := chromium(t, base+"/monitor/queues/default?status=archived", "--dump-dom")
		text := visibleText(dom)
		if !strings.Contains(text, maskedEmail) {
			t.Errorf("the archived page does not show %s; text: %.2000s", maskedEmail, text)
		}
		if bytes.Contains(dom, []byte(rawEmail)) {
			t.Errorf("the archived page shows the raw address %s", rawEmail)
		}
		// asynqmon shortens long IDs in the table; its start and the type show.
		if !strings.Contains(text, "send_release_email:escrow") || !strings.Contains(text, "refused the message") {
			t.Errorf("the archived page does not show job %s with its error; text: %.2000s", archived, text)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		if os.Getenv("UPDATE_SCREENSHOT") != "1" {
			return // only on request: the picture is committed
		}
		out := filepath.Join(t.TempDir(), "monitor.png")
		chromium(t, base+"/monitor/queues/default?status=archived", "--screenshot="+out, "--window-size=1400,900")
		b, err := os.ReadFile(out)
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Fatalf("no PNG screenshot: %v", err)
		}
		if err := os.WriteFile(screenshotPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", screenshotPath, len(b))
	})
}
