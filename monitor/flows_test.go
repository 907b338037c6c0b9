package monitor_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/monitor"
)

// flowFixture is a monitor with three release flows in its Redis:
// release:esc-flow-run running, release:esc-flow-fail failed at its
// capture, release:esc-flow-done completed.
type flowFixture struct {
	*fixture
	store *flows.Store
}

func setupFlows(t *testing.T, change ...func(*monitor.Config)) *flowFixture {
	t.Helper()
	f := &flowFixture{fixture: setup(t, change...)}
	f.store = flows.NewStore(f.client.Redis(), f.inspector, flows.WithClient(f.client))
	ctx := context.Background()
	for _, esc := range []string{"esc-flow-done", "esc-flow-fail", "esc-flow-run"} {
		if _, err := flows.Start(ctx, f.client, escrowtest.ReleaseFlow(t, esc)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.Failed(ctx, "release:esc-flow-fail", "capture", "stripe: capture: authorization expired"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"capture", "seller-email", "partner-webhook", "audit"} {
		if err := f.store.Advance(ctx, f.client, "release:esc-flow-done", step); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestFlowRoutesRefuseMissingOrWrongToken(t *testing.T) {
	f := setupFlows(t)
	for _, path := range []string{"/api/v1/flows", "/api/v1/flows?state=failed", "/api/v1/flows/release:esc-flow-run", "/api/v1/flows/release:nope"} {
		for _, token := range []string{"", "wrong-" + testToken[6:]} {
			a := f.do(t, request{method: "GET", path: path, token: token})
			if a.status != http.StatusUnauthorized {
				t.Errorf("GET %s with token %q: got %d, want 401: %s", path, token, a.status, a.body)
				continue
			}
			if got, want := a.apiError(t).Error.Code, "unauthorized"; got != want {
				t.Errorf("GET %s: got code %q, want %q", path, got, want)
			}
		}
	}
}

func TestFlowStatus(t *testing.T) {
	f := setupFlows(t)
	cases := []struct {
		id        string
		state     string
		stepState map[string]string
	}{
		{"release:esc-flow-run", flows.StateRunning, map[string]string{"capture": flows.StepPending, "seller-email": flows.StepWaiting,
			"partner-webhook": flows.StepWaiting, "audit": flows.StepPending, "failure-audit": flows.StepWaiting}},
		{"release:esc-flow-fail", flows.StateFailed, map[string]string{"capture": flows.StepFailed, "seller-email": flows.StepBlocked,
			"partner-webhook": flows.StepBlocked, "audit": flows.StepPending, "failure-audit": flows.StepPending}},
		{"release:esc-flow-done", flows.StateCompleted, map[string]string{"capture": flows.StepCompleted, "seller-email": flows.StepCompleted,
			"partner-webhook": flows.StepCompleted, "audit": flows.StepCompleted, "failure-audit": flows.StepCancelled}},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			a := f.api(t, "GET", "/api/v1/flows/"+c.id, "")
			if a.status != http.StatusOK {
				t.Fatalf("got %d, want 200: %s", a.status, a.body)
			}
			var v flows.View
			a.json(t, &v)
			if v.ID != c.id || v.Name != "release" || v.State != c.state || v.CreatedAt.IsZero() || v.UpdatedAt.IsZero() {
				t.Errorf("got %+v, want id %s, name release, state %s, times set", v, c.id, c.state)
			}
			got := map[string]string{}
			for _, s := range v.Steps {
				got[s.Name] = s.State
			}
			for name, want := range c.stepState {
				if got[name] != want {
					t.Errorf("step %s: got %q, want %q", name, got[name], want)
				}
			}
			// The API answers exactly what the store says (same shape).
			want, err := f.store.Status(context.Background(), c.id)
			if err != nil {
				t.Fatal(err)
			}
			wb, _ := json.Marshal(want)
			var gotJSON, wantJSON map[string]any
			a.json(t, &gotJSON)
			_ = json.Unmarshal(wb, &wantJSON)
			for _, k := range []string{"id", "name", "key", "state", "createdAt", "updatedAt", "steps"} {
				if _, ok := gotJSON[k]; !ok {
					t.Errorf("JSON %s: no %q", a.body, k)
				}
			}
			if g, w := len(gotJSON["steps"].([]any)), len(wantJSON["steps"].([]any)); g != w {
				t.Errorf("got %d steps, want %d", g, w)
			}
			step := gotJSON["steps"].([]any)[1].(map[string]any)
			for _, k := range []string{"name", "jobId", "type", "after", "onFailure", "state", "attempts"} {
				if _, ok := step[k]; !ok {
					t.Errorf("step JSON %v: no %q", step, k)
				}
			}
		})
	}
	t.Run("failed step's error", func(t *testing.T) {
		var v flows.View
		f.api(t, "GET", "/api/v1/flows/release:esc-flow-fail", "").json(t, &v)
		if name, lastErr := v.FailedStep(); name != "capture" || lastErr == "" {
			t.Errorf("got failed step %q with error %q, want capture with its error", name, lastErr)
		}
	})
}

func TestFlowStatusNotFound(t *testing.T) {
	f := setupFlows(t)
	for _, id := range []string{"release:esc-none", "nothing"} {
		a := f.api(t, "GET", "/api/v1/flows/"+id, "")
		if a.status != http.StatusNotFound {
			t.Fatalf("GET %s: got %d, want 404: %s", id, a.status, a.body)
		}
		e := a.apiError(t)
		if got, want := e.Error.Code, "not_found"; got != want {
			t.Errorf("GET %s: got code %q, want %q", id, got, want)
		}
		if got, want := e.Error.Message, "flow "+id+" not found"; got != want {
			t.Errorf("GET %s: got message %q, want %q", id, got, want)
		}
	}
}

func ids(vs []flows.View) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.ID
	}
	return out
}

func TestFlowList(t *testing.T) {
	f := setupFlows(t)
	cases := []struct {
		query string
		want  []string // most recently created first
	}{
		{"", []string{"release:esc-flow-run", "release:esc-flow-fail", "release:esc-flow-done"}},
		{"?state=running", []string{"release:esc-flow-run"}},
		{"?state=failed", []string{"release:esc-flow-fail"}},
		{"?state=completed&name=release", []string{"release:esc-flow-done"}},
		{"?state=cancelled", []string{}},
		{"?name=refund", []string{}},
		{"?name=release&limit=500", []string{"release:esc-flow-run", "release:esc-flow-fail", "release:esc-flow-done"}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			a := f.api(t, "GET", "/api/v1/flows"+c.query, "")
			if a.status != http.StatusOK {
				t.Fatalf("got %d, want 200: %s", a.status, a.body)
			}
			var l monitor.FlowList
			a.json(t, &l)
			if got := ids(l.Items); !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
			var raw map[string]json.RawMessage
			a.json(t, &raw)
			if got, want := string(raw["items"])[:1], "["; got != want {
				t.Errorf("got items %s, want a list", raw["items"])
			}
			if got, want := string(raw["next"]), "null"; got != want {
				t.Errorf("got next %s, want %s", got, want)
			}
		})
	}
}

func TestFlowListPages(t *testing.T) {
	f := setupFlows(t)
	var got []string
	path := "/api/v1/flows?limit=1"
	for page := 0; page < 5; page++ {
		a := f.api(t, "GET", path, "")
		if a.status != http.StatusOK {
			t.Fatalf("%s: got %d, want 200: %s", path, a.status, a.body)
		}
		var l monitor.FlowList
		a.json(t, &l)
		if len(l.Items) > 1 {
			t.Fatalf("%s: got %d items, want at most 1", path, len(l.Items))
		}
		got = append(got, ids(l.Items)...)
		if l.Next == nil {
			break
		}
		path = "/api/v1/flows?limit=1&cursor=" + url.QueryEscape(*l.Next)
	}
	if want := []string{"release:esc-flow-run", "release:esc-flow-fail", "release:esc-flow-done"}; !slices.Equal(got, want) {
		t.Errorf("paged by one: got %q, want %q", got, want)
	}
}

func TestFlowListRejects(t *testing.T) {
	f := setupFlows(t)
	cases := []struct {
		query, field string
	}{
		{"?state=stuck", "state"},
		{"?state=Failed", "state"},
		{"?limit=0", "limit"},
		{"?limit=501", "limit"},
		{"?limit=ten", "limit"},
		{"?limit=", "limit"},
		{"?cursor=not-a-cursor", "cursor"},
		{"?status=failed", "status"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			a := f.api(t, "GET", "/api/v1/flows"+c.query, "")
			if a.status != http.StatusBadRequest {
				t.Fatalf("got %d, want 400: %s", a.status, a.body)
			}
			e := a.apiError(t)
			if got, want := e.Error.Code, "invalid_request"; got != want {
				t.Errorf("got code %q, want %q", got, want)
			}
			if len(e.Error.Fields) != 1 || e.Error.Fields[0].Field != c.field {
				t.Errorf("got fields %+v, want one naming %q", e.Error.Fields, c.field)
			}
		})
	}
}

func TestFlowRoutesAllowOnlyGet(t *testing.T) {
	f := setupFlows(t)
	for _, path := range []string{"/api/v1/flows", "/api/v1/flows/release:esc-flow-run"} {
		a := f.api(t, "POST", path, "")
		if a.status != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: got %d, want 405: %s", path, a.status, a.body)
		}
	}
}

func TestMetricsExportFlows(t *testing.T) {
	f := setupFlows(t)
	a := f.do(t, request{method: "GET", path: "/metrics"})
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200", a.status)
	}
	for _, name := range []string{flows.MetricStarted, flows.MetricCompleted, flows.MetricFailed, flows.MetricOldestAge} {
		if !strings.Contains(string(a.body), "\n"+name) {
			t.Errorf("/metrics: no %s:\n%s", name, grep(string(a.body), "escrowjobs_flow"))
		}
	}
}
