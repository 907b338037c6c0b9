package monitor_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/hibiken/asynq"
)

func TestNewRefusesWithoutCredentials(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}
	cases := []struct {
		name    string
		cfg     monitor.Config
		want    []string
		wantNot []string
	}{
		{"nothing", monitor.Config{RedisOpt: opt}, []string{"MONITOR_USERNAME", "MONITOR_PASSWORD", "JOB_PROCESSOR_SECRET_TOKEN", "loopback"}, nil},
		{"no token", monitor.Config{RedisOpt: opt, Username: "ops", Password: testPassword}, []string{"JOB_PROCESSOR_SECRET_TOKEN"}, []string{"MONITOR_USERNAME", "MONITOR_PASSWORD"}},
		{"short token", monitor.Config{RedisOpt: opt, Username: "ops", Password: testPassword, APIToken: "hunter2hunter2"}, []string{"JOB_PROCESSOR_SECRET_TOKEN", "32"}, []string{"hunter2"}},
		{"no password", monitor.Config{RedisOpt: opt, Username: "ops", APIToken: testToken}, []string{"MONITOR_PASSWORD"}, []string{"MONITOR_USERNAME", "JOB_PROCESSOR_SECRET_TOKEN"}},
		{"short password", monitor.Config{RedisOpt: opt, Username: "ops", Password: "pw123", APIToken: testToken}, []string{"MONITOR_PASSWORD"}, []string{"pw123"}},
		{"no username", monitor.Config{RedisOpt: opt, Password: testPassword, APIToken: testToken}, []string{"MONITOR_USERNAME"}, nil},
		{"half the credentials in loopback mode", monitor.Config{RedisOpt: opt, Username: "ops", LoopbackNoAuth: true}, []string{"MONITOR_PASSWORD"}, nil},
		{"no Redis", monitor.Config{Username: "ops", Password: testPassword, APIToken: testToken}, []string{"REDIS_URL"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := monitor.New(c.cfg)
			if err == nil {
				m.Close()
				t.Fatal("got a monitor, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to name %s", err, w)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want no %q in it", err, w)
				}
			}
		})
	}
	for _, cfg := range []monitor.Config{
		{RedisOpt: opt, LoopbackNoAuth: true},
		{RedisOpt: opt, LoopbackNoAuth: true, APIToken: testToken},
		{RedisOpt: opt, Username: "ops", Password: testPassword, APIToken: testToken},
	} {
		m, err := monitor.New(cfg)
		if err != nil {
			t.Errorf("New(%+v): %v, want a monitor", cfg, err)
			continue
		}
		m.Close()
	}
}

func TestUIBasicAuth(t *testing.T) {
	// many wrong passwords from one client: the throttle has its own test
	f := setup(t, func(c *monitor.Config) { c.LoginFailures = 1000 })
	id := f.enqueue(t, "esc-700")
	f.archive(t, id)
	lastByte := testPassword[:len(testPassword)-1] + string(testPassword[len(testPassword)-1]^1)
	for _, c := range []struct{ name, user, pass string }{
		{"no credentials", "", ""},
		{"wrong password", testUser, "wrong password here"},
		{"password differs in the last byte", testUser, lastByte},
		{"wrong user", "admin", testPassword},
		{"empty password", testUser, ""},
	} {
		for _, path := range []string{"/monitor/", "/monitor/api/queues", "/monitor/queues/default"} {
			a := f.do(t, request{method: "GET", path: path, user: c.user, pass: c.pass})
			if a.status != http.StatusUnauthorized {
				t.Errorf("%s %s: got %d, want 401", c.name, path, a.status)
			}
			if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
				t.Errorf("%s %s: got WWW-Authenticate %q, want Basic …", c.name, path, got)
			}
		}
	}
	a := f.do(t, request{method: "GET", path: "/monitor/", user: testUser, pass: testPassword})
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `window.FLAG_ROOT_PATH="\/monitor"`) {
		t.Errorf("got %d, want asynqmon's page rooted at /monitor: %.300s", a.status, a.body)
	}
	if got := a.header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("got X-Frame-Options %q, want DENY", got)
	}
	// asynqmon's own API: payload (formatter) and error message (answer
	// pass) are masked.
	a = f.do(t, request{method: "GET", path: "/monitor/api/queues/default/archived_tasks", user: testUser, pass: testPassword})
	if a.status != http.StatusOK {
		t.Fatalf("archived_tasks: got %d %s", a.status, a.body)
	}
	var list struct {
		Tasks []struct {
			ID, Payload  string
			ErrorMessage string `json:"error_message"`
		} `json:"tasks"`
	}
	a.json(t, &list)
	if len(list.Tasks) != 1 || list.Tasks[0].ID != id || !strings.Contains(list.Tasks[0].Payload, maskedEmail) || !strings.Contains(list.Tasks[0].ErrorMessage, maskedEmail) {
		t.Errorf("got %s, want job %s with payload and error masked as %s", a.body, id, maskedEmail)
	}
	if strings.Contains(string(a.body), rawEmail) {
		t.Errorf("asynqmon's API shows the raw address: %s", a.body)
	}
}

func TestUIMutations(t *testing.T) {
	basic := func(path string) request {
		return request{method: "POST", path: path, user: testUser, pass: testPassword}
	}
	t.Run("read-only mode refuses them", func(t *testing.T) {
		f := setup(t, func(c *monitor.Config) { c.ReadOnly = true })
		id := f.enqueue(t, "esc-800")
		for _, r := range []request{
			basic("/monitor/api/queues/default:pause"),
			{method: "DELETE", path: "/monitor/api/queues/default/pending_tasks/" + id, user: testUser, pass: testPassword},
			{method: "DELETE", path: "/monitor/api/queues/default", user: testUser, pass: testPassword},
			basic("/monitor/api/queues/default/pending_tasks/" + id + ":archive"),
			basic("/monitor/api/queues/default/archived_tasks:run_all"),
		} {
			a := f.do(t, r)
			if a.status != http.StatusMethodNotAllowed || a.apiError(t).Error.Code != "read_only" {
				t.Errorf("%s %s: got %d %s, want 405 read_only", r.method, r.path, a.status, a.body)
			}
		}
		if j, _ := f.inspector.Status(context.Background(), id); j.State != "pending" {
			t.Errorf("got state %q, want the job untouched (pending)", j.State)
		}
		if qs, _ := f.inspector.Stats(context.Background()); len(qs) == 0 || qs[1].Paused {
			t.Errorf("got %+v, want default not paused", qs)
		}
		a := f.do(t, request{method: "GET", path: "/monitor/", user: testUser, pass: testPassword})
		if a.status != http.StatusOK || !strings.Contains(string(a.body), `window.FLAG_READ_ONLY="true"`) {
			t.Errorf("got %d, want the UI told it is read-only", a.status)
		}
	})
	t.Run("they work otherwise, from the same origin only", func(t *testing.T) {
		f := setup(t)
		f.enqueue(t, "esc-801")
		cross := basic("/monitor/api/queues/default:pause")
		cross.header = map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
		if a := f.do(t, cross); a.status != http.StatusForbidden {
			t.Errorf("cross-site pause: got %d %s, want 403", a.status, a.body)
		}
		if qs, _ := f.inspector.Stats(context.Background()); qs[1].Paused {
			t.Error("a cross-site request paused the queue")
		}
		same := basic("/monitor/api/queues/default:pause")
		same.header = map[string]string{"Sec-Fetch-Site": "same-origin"}
		if a := f.do(t, same); a.status >= 300 {
			t.Errorf("pause: got %d %s, want success", a.status, a.body)
		}
		if qs, _ := f.inspector.Stats(context.Background()); !qs[1].Paused {
			t.Error("got default not paused, want paused")
		}
	})
}

func TestLoopbackNoAuth(t *testing.T) {
	f := setup(t, func(c *monitor.Config) { c.Username, c.Password, c.APIToken, c.LoopbackNoAuth = "", "", "", true })
	f.enqueue(t, "esc-900")
	for _, path := range []string{"/monitor/", "/api/v1/stats", "/healthz"} {
		if a := f.do(t, request{method: "GET", path: path}); a.status != http.StatusOK {
			t.Errorf("GET %s from loopback without credentials: got %d %s, want 200", path, a.status, a.body)
		}
	}
	// A DNS-rebinding page reaches 127.0.0.1 with its own Host.
	a := f.do(t, request{method: "GET", path: "/api/v1/stats", header: map[string]string{"Host": "evil.example"}})
	if a.status != http.StatusForbidden || a.apiError(t).Error.Code != "forbidden" {
		t.Errorf("foreign Host: got %d %s, want 403 forbidden", a.status, a.body)
	}

	m, err := monitor.New(monitor.Config{RedisOpt: f.redisOpt, LoopbackNoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://127.0.0.1/api/v1/stats", nil)
	req.RemoteAddr = "203.0.113.9:40000"
	m.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("request from 203.0.113.9: got %d, want 403", rec.Code)
	}
}
