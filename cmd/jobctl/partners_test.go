package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/partner"
)

func TestPartners(t *testing.T) {
	f := setup(t)
	opt, err := asynq.ParseRedisURI(f.url)
	if err != nil {
		t.Fatal(err)
	}
	rc := opt.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	st, err := partner.NewState(partner.StateConfig{Redis: rc})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Known(context.Background(), []string{"globex", "acme"}); err != nil {
		t.Fatal(err)
	}

	r := f.run("partners", "disable", "globex", "--reason", "endpoint moved", "--actor", "alice")
	if r.code != 0 || !strings.Contains(r.stdout, "partner globex disabled") {
		t.Fatalf("disable: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = f.run("--json", "partners", "list")
	if r.code != 0 {
		t.Fatalf("list --json: exit %d, stderr %q", r.code, r.stderr)
	}
	var list []partner.Status
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("list --json: %v: %s", err, r.stdout)
	}
	want := []struct{ id, state string }{{"acme", "healthy"}, {"globex", "disabled"}}
	if len(list) != len(want) {
		t.Fatalf("list: got %s, want %d partners", r.stdout, len(want))
	}
	for i, w := range want {
		if list[i].ID != w.id || list[i].State != w.state {
			t.Errorf("partner %d: got %s %s, want %s %s", i, list[i].ID, list[i].State, w.id, w.state)
		}
	}
	r = f.run("partners", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "acme") || !strings.HasPrefix(lines[2], "globex") || !strings.Contains(lines[2], "disabled") {
		t.Errorf("list table: got\n%s\nwant a header, acme, then globex disabled", r.stdout)
	}
	r = f.run("partners", "enable", "globex", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"state": "healthy"`) || !strings.Contains(r.stdout, `"redelivered": 0`) {
		t.Errorf("enable --json: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if s, _ := st.Status(context.Background(), "globex"); s.State != partner.StateHealthy {
		t.Errorf("after enable: state %q, want healthy", s.State)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"partners"}, 2, "want a subcommand"},
		{[]string{"partners", "pause", "x"}, 2, `unknown subcommand "pause"`},
		{[]string{"partners", "enable"}, 2, "missing the partner ID"},
		{[]string{"partners", "enable", "bad/id"}, 2, "want 1-64 letters"},
	} {
		r := f.run(c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("jobctl %v: got exit %d, stderr %q; want exit %d and %q", c.args, r.code, r.stderr, c.code, c.want)
		}
	}
}
