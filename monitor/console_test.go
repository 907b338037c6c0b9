package monitor_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
)

// page is one console answer; body is the HTML.
type page struct {
	status int
	header http.Header
	body   string
}

// noRedirect is a client that shows a redirect instead of following it.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// browse sends a console request as the Basic-auth user (user "" sends no
// credentials), with the flash cookie of an earlier answer.
func (f *fixture) browse(t *testing.T, method, path string, form url.Values, user, pass string, cookies ...*http.Cookie) page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// get is a GET as the test user; it fails the test unless the answer is want.
func (f *fixture) get(t *testing.T, path string, want int, cookies ...*http.Cookie) page {
	t.Helper()
	p := f.browse(t, http.MethodGet, path, nil, testUser, testPassword, cookies...)
	if p.status != want {
		t.Fatalf("GET %s: got %d, want %d\n%.3000s", path, p.status, want, text(p.body))
	}
	if strings.Contains(p.body, rawEmail) {
		t.Errorf("GET %s shows the raw address %s", path, rawEmail)
	}
	return p
}

// submit posts a form as the test user.
func (f *fixture) submit(t *testing.T, path string, form url.Values) page {
	t.Helper()
	return f.browse(t, http.MethodPost, path, form, testUser, testPassword)
}

// follow GETs where a 303 points, with its flash cookie.
func (f *fixture) follow(t *testing.T, p page) page {
	t.Helper()
	if p.status != http.StatusSeeOther {
		t.Fatalf("got %d, want 303\n%.2000s", p.status, text(p.body))
	}
	resp := http.Response{Header: p.header}
	return f.get(t, p.header.Get("Location"), http.StatusOK, resp.Cookies()...)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of a page's forms.
func csrf(t *testing.T, p page) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("the page has no CSRF token:\n%.2000s", text(p.body))
	}
	return html.UnescapeString(m[1])
}

// text is a page's visible text.
func text(body string) string { return visibleText([]byte(body)) }

func detailPath(id string) string { return "/console/dead-letters/" + url.PathEscape(id) }

func (f *fixture) entry(t *testing.T, id string) deadletter.Entry {
	t.Helper()
	e, err := f.ledger.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// every page and action of the console
var (
	consolePages   = []string{"/console/", "/console/dead-letters", "/console/dead-letters/x:1", "/console/flows", "/console/flows/release:esc-1", "/console/escrows/esc-1", "/console/escrows?transactionId=esc-1", "/console/partners", "/console/static/console.css"}
	consoleActions = []string{"/console/actions/requeue", "/console/actions/discard", "/console/actions/bulk-requeue", "/console/actions/partner-enable", "/console/actions/partner-disable"}
)

// TestConsoleNeedsBasicAuth: every page and action of the console is
// behind the Basic auth of /monitor/.
func TestConsoleNeedsBasicAuth(t *testing.T) {
	f := setup(t, func(c *monitor.Config) { c.LoginFailures = 1000 })
	for _, path := range consolePages {
		for _, cred := range [][2]string{{"", ""}, {testUser, "wrong password!"}, {"mallory", testPassword}} {
			if p := f.browse(t, http.MethodGet, path, nil, cred[0], cred[1]); p.status != http.StatusUnauthorized {
				t.Errorf("GET %s as %q: got %d, want 401", path, cred[0], p.status)
			}
		}
	}
	for _, path := range consoleActions {
		if p := f.browse(t, http.MethodPost, path, url.Values{"id": {"x"}}, "", ""); p.status != http.StatusUnauthorized {
			t.Errorf("POST %s without credentials: got %d, want 401", path, p.status)
		}
	}
	p := f.get(t, "/console/dead-letters", http.StatusOK)
	for _, want := range []string{`href="/monitor/"`, `action="/console/escrows"`, `href="/console/partners"`, `href="/console/flows"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the header lacks %s", want)
		}
	}
}

// TestConsoleDeadLetterPages: the ledger newest first with full job IDs,
// masked addresses, filters and cursor paging; a dead letter's page with
// its facts, links and the ledger in the footer.
func TestConsoleDeadLetterPages(t *testing.T) {
	for _, store := range []string{"file", "postgres"} {
		t.Run(store, func(t *testing.T) {
			f := setup(t, withStore(t, store))
			ctx := context.Background()
			// 60 older dead letters straight into the ledger, for paging.
			base := time.Now().Add(-48 * time.Hour)
			for i := range 60 {
				_, err := f.ledger.Record(ctx, deadletter.Entry{ID: fmt.Sprintf("stripe_capture_payment:capture-esc-%04d", i), Type: "stripe_capture_payment",
					Queue: "critical", Payload: []byte(fmt.Sprintf(`{"transactionId":"esc-%04d","paymentIntentId":"pi_%d"}`, i, i)),
					Error: "card_declined", Attempts: 4, Why: deadletter.WhyExhausted, FailedAt: base.Add(time.Duration(i) * time.Minute)})
				if err != nil {
					t.Fatal(err)
				}
			}
			id := f.enqueue(t, "esc-2001")
			f.archive(t, id)

			p := f.get(t, "/console/dead-letters", http.StatusOK)
			body := text(p.body)
			if !strings.Contains(p.body, `href="`+detailPath(id)+`"`) || !strings.Contains(body, id) {
				t.Errorf("the list has no full ID %s with its link; text: %.2000s", id, body)
			}
			if !strings.Contains(body, maskedEmail) {
				t.Errorf("the list does not show the masked error (%s): %.2000s", maskedEmail, body)
			}
			if i, j := strings.Index(body, id), strings.Index(body, "capture-esc-0059"); i < 0 || j < 0 || i > j {
				t.Errorf("not newest first: %s at %d, capture-esc-0059 at %d", id, i, j)
			}
			ledger := "file "
			if store == "postgres" {
				ledger = "PostgreSQL database "
			}
			if !strings.Contains(body, "Ledger: "+ledger) {
				t.Errorf("the footer does not name the ledger (%s…): %.300s", ledger, body[max(0, len(body)-300):])
			}
			next := regexp.MustCompile(`<a rel="next" href="([^"]+)"`).FindStringSubmatch(p.body)
			if next == nil {
				t.Fatalf("61 dead letters and no next page: %.3000s", body)
			}
			p2 := f.get(t, html.UnescapeString(next[1]), http.StatusOK)
			if b2 := text(p2.body); !strings.Contains(b2, "capture-esc-0000") || strings.Contains(b2, id) {
				t.Errorf("page 2 should hold the oldest and not the newest: %.2000s", b2)
			}

			p = f.get(t, "/console/dead-letters?type=send_release_email&state=open&since=1h", http.StatusOK)
			if b := text(p.body); !strings.Contains(b, id) || strings.Contains(b, "capture-esc-") {
				t.Errorf("filter type=send_release_email: got %.2000s", b)
			}
			p = f.get(t, "/console/dead-letters?transactionId=esc-0007", http.StatusOK)
			if b := text(p.body); !strings.Contains(b, "capture-esc-0007") || strings.Contains(b, "capture-esc-0008") || strings.Contains(b, id) {
				t.Errorf("filter transactionId=esc-0007: got %.2000s", b)
			}
			f.get(t, "/console/dead-letters?state=lost", http.StatusBadRequest)
			f.get(t, "/console/dead-letters?cursor=bogus", http.StatusBadRequest)

			p = f.get(t, detailPath(id), http.StatusOK)
			body = text(p.body)
			for _, want := range []string{id, "send_release_email", "default", "permanent", "refused the message", maskedEmail, "esc-2001", "open"} {
				if !strings.Contains(body, want) {
					t.Errorf("the dead letter's page lacks %q: %.3000s", want, body)
				}
			}
			if want := `href="/monitor/queues/default/tasks/` + url.PathEscape(id) + `"`; !strings.Contains(p.body, want) {
				t.Errorf("no link to asynqmon's page of the job (%s)", want)
			}
			if !strings.Contains(p.body, `href="/console/escrows/esc-2001"`) {
				t.Errorf("no link to the escrow")
			}
			f.get(t, detailPath("send_release_email:nope"), http.StatusNotFound)
		})
	}
}

// TestConsoleRequeueAndDiscard: each action needs the user's CSRF token
// (403 and nothing changed without it), is recorded with the Basic-auth
// user and its reason, shows its result, and a dead letter resolved
// already is a 409. The page then lists every run with its fate.
func TestConsoleRequeueAndDiscard(t *testing.T) {
	for _, store := range []string{"file", "postgres"} {
		t.Run(store, func(t *testing.T) {
			f := setup(t, withStore(t, store))
			id := f.enqueue(t, "esc-2101")
			f.archive(t, id)
			token := csrf(t, f.get(t, detailPath(id), http.StatusOK))

			for name, form := range map[string]url.Values{
				"no token":               {"id": {id}},
				"empty token":            {"id": {id}, "csrf": {""}},
				"wrong token":            {"id": {id}, "csrf": {token[:len(token)-2] + "xx"}},
				"another user's token":   {"id": {id}, "csrf": {"dGhpcyBpcyBub3QgYSB0b2tlbg"}},
				"token in a wrong field": {"id": {id}, "token": {token}},
			} {
				for _, action := range []string{"requeue", "discard"} {
					form := form
					form.Set("reason", "test")
					if p := f.submit(t, "/console/actions/"+action, form); p.status != http.StatusForbidden {
						t.Errorf("%s with %s: got %d, want 403", action, name, p.status)
					}
				}
			}
			if e := f.entry(t, id); e.State != deadletter.StateOpen {
				t.Fatalf("a refused form changed the dead letter: %+v", e)
			}
			if st := f.waitState(t, id, "archived"); st.State != "archived" {
				t.Fatal(st)
			}

			p := f.follow(t, f.submit(t, "/console/actions/requeue", url.Values{"id": {id}, "csrf": {token}, "reason": {"smtp is back"}}))
			if b := text(p.body); !strings.Contains(b, "Job "+id+" requeued by "+testUser) {
				t.Errorf("no flash message after the requeue: %.2000s", b)
			}
			if e := f.entry(t, id); e.State != deadletter.StateRequeued || e.Actor != testUser || e.Reason != "smtp is back" {
				t.Errorf("the ledger holds %+v; want requeued by %s, 'smtp is back'", e, testUser)
			}
			p = f.submit(t, "/console/actions/requeue", url.Values{"id": {id}, "csrf": {token}})
			if p.status != http.StatusConflict || !strings.Contains(text(p.body), "not open") {
				t.Errorf("a second requeue: got %d %.500s; want 409 saying it is not open", p.status, text(p.body))
			}

			// It fails again: a second run.
			f.archive(t, id)
			p = f.get(t, detailPath(id), http.StatusOK)
			runs := regexp.MustCompile(`(?s)<table class="list runs">.*?</table>`).FindString(p.body)
			if n := strings.Count(runs, "<tr class=\"state-"); n != 2 {
				t.Errorf("got %d runs, want 2: %s", n, text(runs))
			}
			if r := text(runs); !strings.Contains(r, "requeued "+testUser) || !strings.Contains(r, "smtp is back") || !strings.Contains(r, "open") {
				t.Errorf("the runs do not show the first run requeued by %s: %s", testUser, r)
			}

			p = f.submit(t, "/console/actions/discard", url.Values{"id": {id}, "csrf": {token}, "reason": {"  "}})
			if p.status != http.StatusBadRequest || f.entry(t, id).State != deadletter.StateOpen {
				t.Errorf("discard without a reason: got %d, state %s; want 400 and open", p.status, f.entry(t, id).State)
			}
			p = f.follow(t, f.submit(t, "/console/actions/discard", url.Values{"id": {id}, "csrf": {token}, "reason": {"refunded by hand"}}))
			if b := text(p.body); !strings.Contains(b, "discarded by "+testUser) {
				t.Errorf("no flash message after the discard: %.2000s", b)
			}
			if e := f.entry(t, id); e.State != deadletter.StateDiscarded || e.Actor != testUser || e.Reason != "refunded by hand" {
				t.Errorf("the ledger holds %+v; want discarded by %s", e, testUser)
			}
			if strings.Contains(p.body, `action="/console/actions/requeue"`) {
				t.Errorf("a resolved dead letter still offers a requeue")
			}
			if p := f.submit(t, "/console/actions/discard", url.Values{"id": {id}, "csrf": {token}, "reason": {"again"}}); p.status != http.StatusConflict {
				t.Errorf("a second discard: got %d, want 409", p.status)
			}
			if p := f.submit(t, "/console/actions/requeue", url.Values{"id": {"send_release_email:nope"}, "csrf": {token}}); p.status != http.StatusNotFound {
				t.Errorf("requeue of an unknown job: got %d, want 404", p.status)
			}
		})
	}
}

// TestConsoleBulkRequeue: a dry run lists what would run and changes
// nothing; the requeue itself takes exactly the matching open dead letters.
func TestConsoleBulkRequeue(t *testing.T) {
	f := setup(t)
	var ids []string
	for _, tx := range []string{"esc-3001", "esc-3002", "esc-3003"} {
		ids = append(ids, f.enqueue(t, tx))
	}
	f.archive(t, ids...)
	token := csrf(t, f.get(t, "/console/dead-letters", http.StatusOK))
	// The bulk form carries every filter of the list it sits under.
	listed := f.get(t, "/console/dead-letters?type=send_release_email&queue=default&transactionId=esc-3001&since=2h&until=1s", http.StatusOK)
	bulk := regexp.MustCompile(`(?s)<form method="post" action="/console/actions/bulk-requeue">.*?</form>`).FindString(listed.body)
	for _, kv := range [][2]string{{"type", "send_release_email"}, {"queue", "default"}, {"transactionId", "esc-3001"}, {"since", "2h"}, {"until", "1s"}} {
		if !strings.Contains(bulk, `name="`+kv[0]+`" value="`+kv[1]+`"`) {
			t.Errorf("the bulk form lacks the list's %s=%s: %s", kv[0], kv[1], bulk)
		}
	}

	for _, form := range []url.Values{{"transactionId": {"esc-3002"}, "dryRun": {"1"}}, {"type": {"send_release_email"}}, {"type": {"send_release_email"}, "csrf": {"forged"}}} {
		if p := f.submit(t, "/console/actions/bulk-requeue", form); p.status != http.StatusForbidden {
			t.Errorf("bulk %v: got %d, want 403", form, p.status)
		}
	}
	p := f.submit(t, "/console/actions/bulk-requeue", url.Values{"csrf": {token}, "transactionId": {"esc-3002"}, "dryRun": {"1"}})
	if p.status != http.StatusOK {
		t.Fatalf("dry run: got %d %.1000s", p.status, text(p.body))
	}
	if b := text(p.body); !strings.Contains(b, "1 open dead letters match") || !strings.Contains(b, ids[1]) || strings.Contains(b, ids[0]) {
		t.Errorf("the dry run should list %s alone: %.2000s", ids[1], b)
	}
	for _, id := range ids {
		if e := f.entry(t, id); e.State != deadletter.StateOpen {
			t.Errorf("the dry run changed %s: %+v", id, e)
		}
	}
	p = f.submit(t, "/console/actions/bulk-requeue", url.Values{"csrf": {token}, "type": {"send_release_email"}, "reason": {"mailer fixed"}})
	if b := text(p.body); p.status != http.StatusOK || !regexp.MustCompile(`Matched 3\s*, requeued 3\b`).MatchString(b) {
		t.Errorf("bulk requeue: got %d %.2000s", p.status, b)
	}
	for _, id := range ids {
		if e := f.entry(t, id); e.State != deadletter.StateRequeued || e.Actor != testUser || e.Reason != "mailer fixed" {
			t.Errorf("%s: got %+v, want requeued by %s", id, e, testUser)
		}
	}
}

// TestConsoleReadOnly: no page renders a form that changes something, and
// every action is 403 and changes nothing.
func TestConsoleReadOnly(t *testing.T) {
	f := setup(t, func(c *monitor.Config) { c.ReadOnly = true })
	id := f.enqueue(t, "esc-3101")
	f.archive(t, id)
	f.knownPartners(t, "acme")
	f.failedFlow(t, "esc-3102")
	for _, path := range []string{"/console/dead-letters", detailPath(id), "/console/flows", "/console/flows/release:esc-3102", "/console/escrows/esc-3101", "/console/partners"} {
		p := f.get(t, path, http.StatusOK)
		if strings.Contains(p.body, `method="post"`) || strings.Contains(p.body, `name="csrf"`) {
			t.Errorf("read-only %s renders an action form", path)
		}
		if !strings.Contains(text(p.body), "read-only") {
			t.Errorf("read-only %s does not say so", path)
		}
	}
	for _, path := range consoleActions {
		p := f.submit(t, path, url.Values{"id": {id}, "reason": {"x"}, "csrf": {"anything"}})
		if p.status != http.StatusForbidden {
			t.Errorf("read-only POST %s: got %d, want 403", path, p.status)
		}
	}
	if e := f.entry(t, id); e.State != deadletter.StateOpen {
		t.Errorf("read-only mode changed the dead letter: %+v", e)
	}
}

// failedFlow starts release:<tx> (capture, then the seller's e-mail and
// the partner webhook; an audit on failure) and runs a worker with the
// flows' middleware whose capture fails for good, until the flow failed.
func (f *fixture) failedFlow(t *testing.T, tx string) (flowID, captureID string) {
	t.Helper()
	ctx := context.Background()
	fl, err := flows.New("release", tx).
		Step("capture", payloads.StripeCapturePayment{TransactionID: tx, PaymentIntentID: "pi_" + strings.TrimPrefix(tx, "esc-")}).
		Step("seller-email", payloads.SendReleaseEmail{TransactionID: tx, RecipientEmail: rawEmail, Amount: 12500, Currency: "USD"}, flows.After("capture")).
		Step("partner-webhook", payloads.WebhookEscrowStatusChanged{EventID: "evt-rel-" + tx, PartnerID: "acme", TransactionID: tx,
			PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: "2026-01-02T03:04:05Z"}, flows.After("capture")).
		OnFailure("failure-audit", payloads.AuditLogCreated{EventID: "evt-fail-" + tx, TransactionID: tx, Actor: "system", Action: "escrow.release_failed", OccurredAt: "2026-01-02T03:04:05Z"}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flows.Start(ctx, f.client, fl); err != nil {
		t.Fatal(err)
	}
	store := flows.NewStore(f.client.Redis(), f.inspector, flows.WithClient(f.client))
	mux := asynq.NewServeMux()
	mux.Use(store.Middleware(f.client))
	mux.HandleFunc("stripe_capture_payment", func(context.Context, *asynq.Task) error {
		return fmt.Errorf("stripe: capture: authorization expired or canceled: charge_expired_for_capture: %w", asynq.SkipRetry)
	})
	mux.HandleFunc("audit_log_created", func(context.Context, *asynq.Task) error { return nil })
	w, err := worker.New(worker.Config{Redis: f.redisOpt, DeadLetters: f.ledger, Concurrency: 2, FetchLoops: 1, Flows: store,
		Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: time.Second}, mux)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	flowID = fl.ID()
	captureID = fl.JobIDs()["capture"]
	escrowtest.Eventually(t, flowID+" failed, its capture in the ledger, its audit done", 15*time.Second, func() bool {
		v, err := store.Status(ctx, flowID)
		if err != nil || v.State != flows.StateFailed {
			return false
		}
		for _, s := range v.Steps {
			if s.Name == "failure-audit" && s.State != flows.StepCompleted {
				return false
			}
		}
		_, err = f.ledger.Get(ctx, captureID)
		return err == nil
	})
	return flowID, captureID
}

// TestConsoleFlowAndEscrowPages: the failed flow is listed, its steps in
// dependency order with their states and links to the job and its dead
// letter; the dead letter names the flow and step; the escrow page shows
// the flow and every job and dead letter in time order; the search box
// leads there.
func TestConsoleFlowAndEscrowPages(t *testing.T) {
	f := setup(t)
	flowID, captureID := f.failedFlow(t, "esc-4001")

	for _, path := range []string{"/console/flows", "/console/flows?state=failed", "/console/flows?state=failed&name=release"} {
		p := f.get(t, path, http.StatusOK)
		if b := text(p.body); !strings.Contains(b, flowID) || !strings.Contains(b, "failed") || !strings.Contains(b, "capture") {
			t.Errorf("%s does not list %s as failed at capture: %.2000s", path, flowID, b)
		}
	}
	if b := text(f.get(t, "/console/flows?state=running", http.StatusOK).body); strings.Contains(b, flowID) {
		t.Errorf("the running flows list the failed %s", flowID)
	}
	if b := text(f.get(t, "/console/flows?state=failed&name=refund", http.StatusOK).body); strings.Contains(b, flowID) {
		t.Errorf("name=refund lists %s", flowID)
	}
	f.get(t, "/console/flows?state=sleeping", http.StatusBadRequest)
	f.get(t, "/console/flows/release:esc-9999", http.StatusNotFound)

	p := f.get(t, "/console/flows/"+flowID, http.StatusOK)
	steps := regexp.MustCompile(`(?s)<ol class="steps">.*?</ol>`).FindString(p.body)
	order := []string{"capture", "seller-email", "partner-webhook", "failure-audit"}
	last := -1
	for _, name := range order {
		i := strings.Index(steps, "<strong>"+name+"</strong>")
		if i < last {
			t.Errorf("step %s is not in dependency order: %s", name, text(steps))
		}
		last = i
	}
	s := text(steps)
	for _, want := range []string{"failed", "blocked", "after capture", "charge_expired_for_capture", captureID, "completed"} {
		if !strings.Contains(s, want) {
			t.Errorf("the flow's steps lack %q: %s", want, s)
		}
	}
	if !strings.Contains(steps, `href="`+detailPath(captureID)+`"`) || !strings.Contains(steps, `href="/monitor/queues/critical/tasks/`+url.PathEscape(captureID)+`"`) {
		t.Errorf("the capture step does not link to its dead letter and its job: %s", steps)
	}

	p = f.get(t, detailPath(captureID), http.StatusOK)
	if !strings.Contains(p.body, `href="/console/flows/`+url.PathEscape(flowID)+`"`) || !strings.Contains(text(p.body), "step capture") {
		t.Errorf("the dead letter does not name its flow and step: %.2000s", text(p.body))
	}

	search := f.browse(t, http.MethodGet, "/console/escrows?transactionId=+esc-4001+", nil, testUser, testPassword)
	if search.status != http.StatusSeeOther || search.header.Get("Location") != "/console/escrows/esc-4001" {
		t.Errorf("search: got %d to %q, want 303 to /console/escrows/esc-4001", search.status, search.header.Get("Location"))
	}
	p = f.get(t, "/console/escrows/esc-4001", http.StatusOK)
	b := text(p.body)
	for _, want := range []string{flowID, captureID, "dead letter (permanent)", "stripe_capture_payment", "audit_log_created", "blocked"} {
		if !strings.Contains(b, want) {
			t.Errorf("the escrow page lacks %q: %.3000s", want, b)
		}
	}
	if i, j := strings.Index(b, "job enqueued "+captureID), strings.Index(b, "dead letter (permanent) "+captureID); i < 0 || j < 0 || i > j {
		t.Errorf("not in time order: the capture's enqueue at %d, its dead letter at %d: %.3000s", i, j, b)
	}
	f.get(t, "/console/escrows/not%20an%20id", http.StatusBadRequest)
}

// knownPartners registers partner IDs as the worker's registry does.
func (f *fixture) knownPartners(t *testing.T, ids ...string) *partner.State {
	t.Helper()
	st, err := partner.NewState(partner.StateConfig{Redis: f.client.Redis()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Known(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestConsolePartners: every partner's state; disable needs a reason and
// a token; enable turns it back on; an unknown partner is 404.
func TestConsolePartners(t *testing.T) {
	f := setup(t)
	st := f.knownPartners(t, "acme", "globex")
	ctx := context.Background()
	p := f.get(t, "/console/partners", http.StatusOK)
	if b := text(p.body); !strings.Contains(b, "acme") || !strings.Contains(b, "globex") || !strings.Contains(b, "healthy") {
		t.Errorf("the partners page: %.2000s", b)
	}
	token := csrf(t, p)
	state := func(id string) string {
		s, err := st.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s.State
	}
	if p := f.submit(t, "/console/actions/partner-disable", url.Values{"id": {"acme"}, "reason": {"maintenance"}}); p.status != http.StatusForbidden || state("acme") != partner.StateHealthy {
		t.Errorf("disable without a token: got %d, state %s; want 403, healthy", p.status, state("acme"))
	}
	if p := f.submit(t, "/console/actions/partner-disable", url.Values{"id": {"acme"}, "csrf": {token}}); p.status != http.StatusBadRequest || state("acme") != partner.StateHealthy {
		t.Errorf("disable without a reason: got %d, state %s; want 400, healthy", p.status, state("acme"))
	}
	if p := f.submit(t, "/console/actions/partner-disable", url.Values{"id": {"initech"}, "csrf": {token}, "reason": {"x"}}); p.status != http.StatusNotFound {
		t.Errorf("disable of an unknown partner: got %d, want 404", p.status)
	}
	p = f.follow(t, f.submit(t, "/console/actions/partner-disable", url.Values{"id": {"acme"}, "csrf": {token}, "reason": {"maintenance window"}}))
	if b := text(p.body); !strings.Contains(b, "Partner acme disabled by "+testUser) || state("acme") != partner.StateDisabled {
		t.Errorf("disable: state %s, page %.2000s", state("acme"), b)
	}
	if !strings.Contains(p.body, `action="/console/actions/partner-enable"`) {
		t.Errorf("a disabled partner offers no enable")
	}
	if p := f.submit(t, "/console/actions/partner-enable", url.Values{"id": {"acme"}, "csrf": {"bad"}}); p.status != http.StatusForbidden || state("acme") != partner.StateDisabled {
		t.Errorf("enable with a bad token: got %d, state %s; want 403, disabled", p.status, state("acme"))
	}
	p = f.follow(t, f.submit(t, "/console/actions/partner-enable", url.Values{"id": {"acme"}, "csrf": {token}, "reason": {"back"}}))
	if b := text(p.body); !strings.Contains(b, "Partner acme enabled by "+testUser) || state("acme") != partner.StateHealthy {
		t.Errorf("enable: state %s, page %.2000s", state("acme"), b)
	}
	if !strings.Contains(f.logs.String(), `"actor":"`+testUser+`"`) {
		t.Errorf("the actions are not logged with the actor")
	}
}

// TestConsoleTokenIsBoundToTheUser: a token of one monitor process (its
// own random key) does not work on another.
func TestConsoleTokenIsBoundToTheUser(t *testing.T) {
	a, b := setup(t), setup(t)
	id := b.enqueue(t, "esc-3201")
	b.archive(t, id)
	tokenA := csrf(t, a.get(t, "/console/dead-letters", http.StatusOK))
	if p := b.submit(t, "/console/actions/requeue", url.Values{"id": {id}, "csrf": {tokenA}}); p.status != http.StatusForbidden {
		t.Errorf("a token of another monitor: got %d, want 403", p.status)
	}
	if e := b.entry(t, id); e.State != deadletter.StateOpen {
		t.Errorf("changed: %+v", e)
	}
}
