package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/escrowjobs/escrowjobs/escrowtest/sample"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// maskedForm is what an address becomes: first character, "***", "@domain".
func maskedForm(addr string) string {
	r, _ := utf8.DecodeRuneInString(addr)
	return string(r) + "***" + addr[strings.LastIndex(addr, "@"):]
}

// rawIn reports whether s shows addr as written or as escaped in JSON.
func rawIn(s, addr string) bool {
	b, _ := json.Marshal(addr)
	return strings.Contains(s, addr) || strings.Contains(s, string(b[1:len(b)-1]))
}

// TestEveryAddressFormIsMaskedInAPIUIAndLogs: jobs for every address form
// the validator accepts show masked in the JSON API, in asynqmon's UI API
// (payload formatter and answer pass), and a request path holding an
// address is masked in the access log.
func TestEveryAddressFormIsMaskedInAPIUIAndLogs(t *testing.T) {
	addrs, _ := sample.Addresses()
	for _, m := range sample.MustAcceptAddresses {
		if !slices.Contains(addrs, m) {
			t.Fatalf("the validator refuses %q; want it among the forms tested", m)
		}
	}
	f := setup(t, func(c *monitor.Config) { c.LoginFailures = 1000 })
	var ids []string
	for i, a := range addrs {
		for _, p := range []payloads.Payload{
			payloads.SendReleaseEmail{TransactionID: fmt.Sprintf("esc-m%d", i), RecipientEmail: a, Amount: 1, Currency: "EUR"},
			payloads.NotifyDisputeResolved{DisputeID: fmt.Sprintf("d-m%d", i), TransactionID: fmt.Sprintf("esc-m%d", i), Resolution: "split", BuyerEmail: a, SellerEmail: a},
		} {
			task, err := tasks.New(p)
			if err != nil {
				t.Fatalf("%q: %v", a, err)
			}
			id, err := f.client.Enqueue(context.Background(), task)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
	}
	for i, a := range addrs {
		want := maskedForm(a)
		// the JSON API
		for _, id := range ids[2*i : 2*i+2] {
			ans := f.api(t, "GET", "/api/v1/jobs/"+url.PathEscape(id), "")
			if ans.status != http.StatusOK {
				t.Fatalf("GET job %s: got %d %s", id, ans.status, ans.body)
			}
			if rawIn(string(ans.body), a) {
				t.Errorf("API job %s shows %q: %s", id, a, ans.body)
			}
			var job struct{ Payload map[string]any }
			ans.json(t, &job)
			for _, k := range []string{"recipientEmail", "buyerEmail", "sellerEmail"} {
				if v, ok := job.Payload[k]; ok && v != want {
					t.Errorf("API job %s %s: got %q, want %q", id, k, v, want)
				}
			}
		}
		// a request path holding the address, as typed and percent-encoded
		for _, path := range []string{"/api/v1/jobs/" + url.PathEscape(a), "/api/v1/jobs/send_release_email:" + url.PathEscape(a) + "/x", "/monitor/queues/" + url.PathEscape(a)} {
			ans := f.api(t, "GET", path, "")
			if rawIn(string(ans.body), a) {
				t.Errorf("GET %s: the %d answer shows %q: %s", path, ans.status, a, ans.body)
			}
		}
	}
	// asynqmon's UI API: the payload formatter and the answer pass
	for _, q := range []string{"default"} {
		ans := f.do(t, request{method: "GET", path: "/monitor/api/queues/" + q + "/pending_tasks?page=1&size=200", user: testUser, pass: testPassword})
		if ans.status != http.StatusOK {
			t.Fatalf("asynqmon pending_tasks: got %d %s", ans.status, ans.body)
		}
		var list struct {
			Tasks []struct{ ID, Payload string } `json:"tasks"`
		}
		ans.json(t, &list)
		if len(list.Tasks) != len(ids) {
			t.Errorf("asynqmon: got %d tasks, want %d", len(list.Tasks), len(ids))
		}
		for _, a := range addrs {
			if rawIn(string(ans.body), a) {
				t.Errorf("asynqmon's answer shows %q", a)
			}
		}
		for _, task := range list.Tasks {
			i := slices.Index(ids, task.ID) / 2
			if i < 0 || !strings.Contains(task.Payload, strings.Trim(mustJSON(maskedForm(addrs[i])), `"`)) {
				t.Errorf("asynqmon task %s: got payload %s, want %s in it", task.ID, task.Payload, maskedForm(addrs[max(i, 0)]))
			}
		}
	}
	logs := f.logs.String()
	for _, a := range addrs {
		if rawIn(logs, a) {
			t.Errorf("the log shows %q", a)
		}
		if want := `"path":"/api/v1/jobs/` + strings.Trim(mustJSON(maskedForm(a)), `"`) + `"`; !strings.Contains(logs, want) {
			t.Errorf("the access log lacks %s", want)
		}
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
