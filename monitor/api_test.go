package monitor_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

func TestAPIRefusesMissingOrWrongToken(t *testing.T) {
	// many wrong tokens from one client: the throttle has its own test
	f := setup(t, func(c *monitor.Config) { c.LoginFailures = 1000 })
	id := f.enqueue(t, "esc-auth")
	routes := []struct{ method, path, body string }{
		{"POST", "/api/v1/jobs", enqueueBody("send_release_email", releasePayload("esc-auth-2", rawEmail))},
		{"GET", "/api/v1/jobs/" + id, ""},
		{"GET", "/api/v1/stats", ""},
		{"GET", "/api/v1/dead-letters?limit=5", ""},
		{"POST", "/api/v1/dead-letters/" + id + "/requeue", ""},
		{"GET", "/api/v1/nonexistent", ""},
	}
	lastByte := testToken[:len(testToken)-1] + string(testToken[len(testToken)-1]^1)
	creds := []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"wrong token", "Bearer wrong-" + testToken[6:]},
		{"last byte differs", "Bearer " + lastByte},
		{"token prefix", "Bearer " + testToken[:len(testToken)-1]},
		{"token plus a byte", "Bearer " + testToken + "x"},
		{"basic scheme", "Basic " + testToken},
		{"empty bearer", "Bearer "},
	}
	for _, r := range routes {
		for _, c := range creds {
			t.Run(r.method+" "+r.path+"/"+c.name, func(t *testing.T) {
				req := request{method: r.method, path: r.path, body: r.body}
				if c.header != "" {
					req.header = map[string]string{"Authorization": c.header}
				}
				a := f.do(t, req)
				if a.status != http.StatusUnauthorized {
					t.Fatalf("got %d, want 401: %s", a.status, a.body)
				}
				if e := a.apiError(t); e.Error.Code != "unauthorized" {
					t.Errorf("got code %q, want unauthorized", e.Error.Code)
				}
				if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("got WWW-Authenticate %q, want Bearer …", got)
				}
			})
		}
	}
	// Nothing was enqueued or requeued by the refused requests.
	if _, err := f.inspector.Status(context.Background(), "send_release_email:escrow-esc-auth-2-release-"+payloads.RecipientHash(rawEmail)); !errors.Is(err, tasks.ErrNotFound) {
		t.Errorf("a refused enqueue left a job: %v", err)
	}
}

func TestEnqueue(t *testing.T) {
	f := setup(t)
	body := enqueueBody("send_release_email", releasePayload("esc-100", rawEmail))
	a := f.api(t, "POST", "/api/v1/jobs", body)
	if a.status != http.StatusCreated {
		t.Fatalf("got %d, want 201: %s", a.status, a.body)
	}
	var created struct {
		ID        string `json:"id"`
		Duplicate *bool  `json:"duplicate"`
	}
	a.json(t, &created)
	wantID := "send_release_email:escrow-esc-100-release-" + payloads.RecipientHash(rawEmail)
	if created.ID != wantID || created.Duplicate != nil {
		t.Errorf("got %s, want {\"id\": %q}", a.body, wantID)
	}
	if got := a.header.Get("Location"); got != "/api/v1/jobs/"+wantID {
		t.Errorf("got Location %q, want /api/v1/jobs/%s", got, wantID)
	}
	if j := f.waitState(t, wantID, "pending"); j.Queue != "default" || j.MaxRetry != 3 {
		t.Errorf("got queue %q maxRetry %d, want default 3", j.Queue, j.MaxRetry)
	}

	t.Run("duplicate answers 200 with the existing id", func(t *testing.T) {
		a := f.api(t, "POST", "/api/v1/jobs", body)
		var dup struct {
			ID        string `json:"id"`
			Duplicate bool   `json:"duplicate"`
		}
		a.json(t, &dup)
		if a.status != http.StatusOK || dup.ID != wantID || !dup.Duplicate {
			t.Errorf("got %d %s, want 200 {\"id\": %q, \"duplicate\": true}", a.status, a.body, wantID)
		}
	})

	t.Run("dedupeKey and processIn", func(t *testing.T) {
		for _, c := range []struct {
			name, extra, wantID string
			wantDelay           time.Duration
		}{
			{"duration string", `"dedupeKey":"escrow-esc-101-release","processIn":"10s"`, "send_release_email:escrow-esc-101-release", 10 * time.Second},
			{"seconds number", `"dedupeKey":"escrow-esc-102-release","processIn":90`, "send_release_email:escrow-esc-102-release", 90 * time.Second},
			{"fractional seconds", `"dedupeKey":"escrow-esc-103-release","processIn":2.5`, "send_release_email:escrow-esc-103-release", 2500 * time.Millisecond},
		} {
			t.Run(c.name, func(t *testing.T) {
				start := time.Now()
				a := f.api(t, "POST", "/api/v1/jobs", enqueueBody("send_release_email", releasePayload("esc-10x", rawEmail), c.extra))
				if a.status != http.StatusCreated {
					t.Fatalf("got %d, want 201: %s", a.status, a.body)
				}
				j := f.waitState(t, c.wantID, "scheduled")
				if j.NextProcessAt == nil {
					t.Fatal("got no nextProcessAt for a delayed job")
				}
				if d := j.NextProcessAt.Sub(start); d < c.wantDelay-time.Second || d > c.wantDelay+2*time.Second {
					t.Errorf("got nextProcessAt %s after the request, want about %s", d, c.wantDelay)
				}
			})
		}
	})

	t.Run("the queue of the type", func(t *testing.T) {
		a := f.api(t, "POST", "/api/v1/jobs", enqueueBody("stripe_capture_payment", `{"transactionId":"esc-7","paymentIntentId":"pi_123"}`))
		if a.status != http.StatusCreated {
			t.Fatalf("got %d, want 201: %s", a.status, a.body)
		}
		if j := f.waitState(t, "stripe_capture_payment:capture-pi_123", "pending"); j.Queue != "critical" {
			t.Errorf("got queue %q, want critical", j.Queue)
		}
	})
}

func TestEnqueueRejects(t *testing.T) {
	f := setup(t)
	cases := []struct {
		name       string
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string
		wantFields []string
	}{
		{"bad e-mail", enqueueBody("send_release_email", releasePayload("esc-1", "jane.doe@@example")), nil, 400, "invalid_payload", []string{"recipientEmail"}},
		{"every bad field", enqueueBody("send_release_email", `{"transactionId":"bad id!","recipientEmail":"nope","amount":0,"currency":"usd"}`), nil, 400, "invalid_payload",
			[]string{"transactionId", "recipientEmail", "amount", "currency"}},
		{"unknown payload field", enqueueBody("send_release_email", `{"transactionId":"esc-1","recipientEmail":"a@example.com","amount":1,"currency":"USD","cc":"x"}`), nil, 400, "invalid_payload", []string{"cc"}},
		{"payload not an object", enqueueBody("send_release_email", `"hello"`), nil, 400, "invalid_payload", []string{"payload"}},
		{"unknown type", enqueueBody("send_fax", `{}`), nil, 400, "unknown_type", []string{"type"}},
		{"partial refund without refundId", enqueueBody("stripe_refund_payment", `{"transactionId":"esc-1","paymentIntentId":"pi_1","amount":500}`), nil, 400, "invalid_payload", []string{"refundId"}},
		{"missing type and payload", `{}`, nil, 400, "invalid_payload", []string{"type", "payload"}},
		{"null payload", `{"type":"send_release_email","payload":null}`, nil, 400, "invalid_payload", []string{"payload"}},
		{"negative processIn", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"processIn":"-5s"`), nil, 400, "invalid_payload", []string{"processIn"}},
		{"negative seconds", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"processIn":-1`), nil, 400, "invalid_payload", []string{"processIn"}},
		{"hugely negative seconds", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"processIn":-1e300`), nil, 400, "invalid_payload", []string{"processIn"}},
		{"processIn not a duration", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"processIn":"soon"`), nil, 400, "invalid_payload", []string{"processIn"}},
		{"processIn too long", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"processIn":1e300`), nil, 400, "invalid_payload", []string{"processIn"}},
		{"bad dedupe key", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"dedupeKey":"has spaces/and slashes"`), nil, 400, "invalid_payload", []string{"dedupeKey"}},
		{"unknown request field", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail), `"queue":"critical"`), nil, 400, "invalid_request", []string{"queue"}},
		{"type not a string", `{"type":7,"payload":{}}`, nil, 400, "invalid_request", []string{"type"}},
		{"not JSON", `{"type":`, nil, 400, "invalid_request", []string{"body"}},
		{"trailing data", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail)) + `{}`, nil, 400, "invalid_request", []string{"body"}},
		{"form content type", enqueueBody("send_release_email", releasePayload("esc-1", rawEmail)), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", nil},
		{"body over 64 KiB", enqueueBody("audit_log_created", `{"pad":"`+strings.Repeat("x", monitor.MaxBodyBytes)+`"}`), nil, 413, "payload_too_large", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := f.do(t, request{method: "POST", path: "/api/v1/jobs", body: c.body, token: testToken, header: c.header})
			if a.status != c.wantStatus {
				t.Fatalf("got %d, want %d: %s", a.status, c.wantStatus, a.body)
			}
			e := a.apiError(t)
			if e.Error.Code != c.wantCode {
				t.Errorf("got code %q, want %q: %s", e.Error.Code, c.wantCode, a.body)
			}
			var got []string
			for _, fe := range e.Error.Fields {
				got = append(got, fe.Field)
				if fe.Message == "" {
					t.Errorf("field %s has no message", fe.Field)
				}
			}
			for _, w := range c.wantFields {
				if !strings.Contains(","+strings.Join(got, ",")+",", ","+w+",") {
					t.Errorf("got fields %v, want %s among them: %s", got, w, a.body)
				}
			}
			if strings.Contains(string(a.body), "jane.doe") {
				t.Errorf("the answer repeats the e-mail address: %s", a.body)
			}
		})
	}
	if qs, err := f.inspector.Stats(context.Background()); err != nil {
		t.Fatal(err)
	} else {
		for _, q := range qs {
			if q.Size != 0 {
				t.Errorf("queue %s holds %d jobs after only bad requests, want 0", q.Queue, q.Size)
			}
		}
	}
}

func TestJobStatus(t *testing.T) {
	f := setup(t)
	id := f.enqueue(t, "esc-200")
	a := f.api(t, "GET", "/api/v1/jobs/"+id, "")
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200: %s", a.status, a.body)
	}
	var j tasks.Job
	a.json(t, &j)
	if j.ID != id || j.State != "pending" || j.Type != "send_release_email" || j.Queue != "default" || j.Attempts != 0 || j.MaxRetry != 3 || j.NextProcessAt == nil {
		t.Errorf("got %+v, want %s pending send_release_email on default, 0 attempts, maxRetry 3, a nextProcessAt", j, id)
	}
	if !strings.Contains(string(a.body), maskedEmail) || strings.Contains(string(a.body), rawEmail) {
		t.Errorf("got %s, want the payload's e-mail masked as %s", a.body, maskedEmail)
	}
	for _, key := range []string{`"state"`, `"type"`, `"queue"`, `"attempts"`, `"maxRetry"`, `"nextProcessAt"`} {
		if !strings.Contains(string(a.body), key) {
			t.Errorf("the answer lacks %s: %s", key, a.body)
		}
	}

	for _, path := range []string{"/api/v1/jobs/send_release_email:nope", "/api/v1/jobs/" + strings.Repeat("x", 400), "/api/v1/jobs/jane.doe@example.com"} {
		a := f.api(t, "GET", path, "")
		if a.status != http.StatusNotFound || a.apiError(t).Error.Code != "not_found" {
			t.Errorf("GET %.60s: got %d %s, want 404 not_found", path, a.status, a.body)
		}
		if strings.Contains(string(a.body), rawEmail) {
			t.Errorf("the 404 repeats the raw address: %s", a.body)
		}
	}
	if a := f.api(t, "DELETE", "/api/v1/jobs/"+id, ""); a.status != http.StatusMethodNotAllowed || a.apiError(t).Error.Code != "method_not_allowed" {
		t.Errorf("DELETE: got %d %s, want 405 method_not_allowed", a.status, a.body)
	}
}

func TestStats(t *testing.T) {
	f := setup(t)
	f.enqueue(t, "esc-300")
	f.enqueue(t, "esc-301")
	a := f.api(t, "GET", "/api/v1/stats", "")
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200: %s", a.status, a.body)
	}
	var qs []tasks.QueueStats
	a.json(t, &qs)
	got := map[string]tasks.QueueStats{}
	for _, q := range qs {
		got[q.Queue] = q
	}
	for _, q := range []string{"critical", "default", "low"} {
		if _, ok := got[q]; !ok {
			t.Errorf("got queues %v, want %s among them", qs, q)
		}
	}
	if got["default"].Pending != 2 {
		t.Errorf("got default pending %d, want 2", got["default"].Pending)
	}
}

func TestUnknownRoutesAreJSON404(t *testing.T) {
	f := setup(t)
	for _, r := range []request{
		{method: "GET", path: "/nope"},
		{method: "GET", path: "/api/v2/jobs", token: testToken},
		{method: "POST", path: "/api/v1/jobs/x/y/z", token: testToken},
	} {
		a := f.do(t, r)
		if a.status != http.StatusNotFound || a.apiError(t).Error.Code != "not_found" {
			t.Errorf("%s %s: got %d %s, want a JSON 404", r.method, r.path, a.status, a.body)
		}
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s: got Content-Type %q, want application/json", r.method, r.path, ct)
		}
	}
}
