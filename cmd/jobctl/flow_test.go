package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

const flowTestToken = "tok_flow_0123456789abcdef0123456789"

// flowFixture is jobctl's fixture with three release flows in its Redis
// (release:esc-cli-run running, release:esc-cli-fail failed at its
// capture, release:esc-cli-done completed) and the monitor's API over the
// same Redis, to compare --json with.
type flowFixture struct {
	*fixture
	api string
}

func setupFlows(t *testing.T) *flowFixture {
	t.Helper()
	f := &flowFixture{fixture: setup(t)}
	opt, err := asynq.ParseRedisURI(f.url)
	if err != nil {
		t.Fatal(err)
	}
	client, in := tasks.NewClient(opt), tasks.NewInspector(opt)
	t.Cleanup(func() { client.Close(); in.Close() })
	store := flows.NewStore(client.Redis(), in, flows.WithClient(client))
	ctx := context.Background()
	for _, esc := range []string{"esc-cli-done", "esc-cli-fail", "esc-cli-run"} {
		if _, err := flows.Start(ctx, client, escrowtest.ReleaseFlow(t, esc)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Failed(ctx, "release:esc-cli-fail", "capture", "stripe: capture: authorization expired"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"capture", "seller-email", "partner-webhook", "audit"} {
		if err := store.Advance(ctx, client, "release:esc-cli-done", step); err != nil {
			t.Fatal(err)
		}
	}
	m, err := monitor.New(monitor.Config{RedisOpt: opt, APIToken: flowTestToken, Username: "ops", Password: "correct horse battery", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() { srv.Close(); m.Close() })
	f.api = srv.URL
	return f
}

// get is the monitor API's answer to GET path, decoded.
func (f *flowFixture) get(t *testing.T, path string) any {
	t.Helper()
	req, err := http.NewRequest("GET", f.api+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+flowTestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return v
}

func TestFlowJSONIsTheAPIs(t *testing.T) {
	f := setupFlows(t)
	cases := []struct {
		args []string
		path string
	}{
		{[]string{"--json", "flow", "show", "release:esc-cli-fail"}, "/api/v1/flows/release:esc-cli-fail"},
		{[]string{"flow", "show", "release:esc-cli-run", "--json"}, "/api/v1/flows/release:esc-cli-run"},
		{[]string{"--json", "flow", "list"}, "/api/v1/flows"},
		{[]string{"--json", "flow", "list", "--state", "failed", "--name", "release"}, "/api/v1/flows?state=failed&name=release"},
		{[]string{"--json", "flow", "list", "--name", "refund"}, "/api/v1/flows?name=refund"},
		{[]string{"--json", "flow", "list", "--limit", "2"}, "/api/v1/flows?limit=2"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := f.run(c.args...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			var got any
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("stdout is not JSON: %v: %s", err, r.stdout)
			}
			if want := f.get(t, c.path); !reflect.DeepEqual(got, want) {
				t.Errorf("got %s\nwant (GET %s) %v", r.stdout, c.path, want)
			}
		})
	}
}

func TestFlowShow(t *testing.T) {
	f := setupFlows(t)
	cases := []struct {
		id    string
		wants []string // in this order
	}{
		{"release:esc-cli-fail", []string{"flow:", "release:esc-cli-fail", "state:", "failed", "failed step:", "capture", "steps:", "0 of 4 completed",
			"STEP", "STATE", "ATTEMPTS", "AFTER", "JOB ID", "LAST ERROR",
			"capture", "failed", "stripe: capture: authorization expired",
			"seller-email", "blocked", "capture",
			"partner-webhook", "blocked", "capture",
			"audit", "pending",
			"failure-audit", "pending", "(on failure)"}},
		{"release:esc-cli-done", []string{"state:", "completed", "4 of 4 completed", "capture", "completed",
			"seller-email", "completed", "partner-webhook", "completed", "audit", "completed", "failure-audit", "cancelled"}},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			r := f.run("flow", "show", c.id)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			rest := r.stdout
			for _, w := range c.wants {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("got:\n%s\nwant %q (after what came before)", r.stdout, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestFlowList(t *testing.T) {
	f := setupFlows(t)
	cases := []struct {
		args    []string
		want    []string
		notWant []string
	}{
		{[]string{"flow", "list"}, []string{"CREATED", "ID", "STATE", "STEPS", "FAILED STEP", "release:esc-cli-run", "release:esc-cli-fail", "release:esc-cli-done"}, nil},
		{[]string{"flow", "list", "--state", "failed"}, []string{"release:esc-cli-fail", "failed", "0 of 4 completed", "capture", "authorization expired"},
			[]string{"esc-cli-run", "esc-cli-done"}},
		{[]string{"flow", "list", "--state", "completed", "--name", "release"}, []string{"release:esc-cli-done", "4 of 4 completed"}, []string{"esc-cli-run", "esc-cli-fail"}},
		{[]string{"flow", "list", "--name", "refund"}, []string{"no flows"}, []string{"esc-cli"}},
		{[]string{"flow", "list", "--limit", "1"}, []string{"release:esc-cli-run", "more: --cursor "}, []string{"esc-cli-fail", "esc-cli-done"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := f.run(c.args...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("got:\n%s\nwant %q", r.stdout, w)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(r.stdout, w) {
					t.Errorf("got:\n%s\nwant no %q", r.stdout, w)
				}
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		var got []string
		args := []string{"--json", "flow", "list", "--limit", "1"}
		for page := 0; page < 5; page++ {
			r := f.run(args...)
			var l flowList
			if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
				t.Fatalf("%v: %s %s", err, r.stdout, r.stderr)
			}
			for _, v := range l.Items {
				got = append(got, v.ID)
			}
			if l.Next == nil {
				break
			}
			args = []string{"--json", "flow", "list", "--limit", "1", "--cursor", *l.Next}
		}
		if want := []string{"release:esc-cli-run", "release:esc-cli-fail", "release:esc-cli-done"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

func TestFlowErrors(t *testing.T) {
	f := setupFlows(t)
	cases := []struct {
		args  []string
		code  int
		wants []string
	}{
		{[]string{"flow", "show", "release:esc-none"}, 1, []string{"flow release:esc-none not found"}},
		{[]string{"--json", "flow", "show", "release:esc-none"}, 1, []string{"flow release:esc-none not found"}},
		{[]string{"flow", "show"}, 2, []string{"missing the flow ID"}},
		{[]string{"flow", "show", "a", "b"}, 2, []string{"extra"}},
		{[]string{"flow"}, 2, []string{"want a subcommand"}},
		{[]string{"flow", "start"}, 2, []string{`unknown subcommand "start"`}},
		{[]string{"flow", "list", "--state", "stuck"}, 2, []string{"--state must be running, completed, failed or cancelled"}},
		{[]string{"flow", "list", "--limit", "0"}, 2, []string{"--limit must be 1-500"}},
		{[]string{"flow", "list", "--limit", "501"}, 2, []string{"--limit must be 1-500"}},
		{[]string{"flow", "list", "--cursor", "bogus"}, 2, []string{"--cursor"}},
		{[]string{"flow", "list", "extra"}, 2, []string{"takes no arguments"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := f.run(c.args...)
			if r.code != c.code {
				t.Fatalf("got exit %d, want %d (stderr %q)", r.code, c.code, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("got stdout %q, want nothing", r.stdout)
			}
			checkOneLine(t, r, c.wants...)
		})
	}
	t.Run("redis down", func(t *testing.T) {
		env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}
		r := runWith(env, "", "flow", "show", "release:esc-cli-run")
		if r.code != 1 {
			t.Fatalf("got exit %d, want 1 (stderr %q)", r.code, r.stderr)
		}
		checkOneLine(t, r, "does not answer")
	})
}

func TestDependencyOrder(t *testing.T) {
	steps := []flows.StepView{
		{Name: "undo", OnFailure: true},
		{Name: "email", After: []string{"capture"}},
		{Name: "fan-in", After: []string{"email", "webhook"}},
		{Name: "capture"},
		{Name: "webhook", After: []string{"capture"}},
		{Name: "audit"},
	}
	var got []string
	for _, s := range dependencyOrder(steps) {
		got = append(got, s.Name)
	}
	if want := []string{"capture", "email", "webhook", "fan-in", "audit", "undo"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
