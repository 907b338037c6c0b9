package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/peertest"
)

const (
	testToken    = "tok_0123456789abcdef0123456789abcdef"
	testPassword = "correct horse battery"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestStartupErrorsNameTheVariable(t *testing.T) {
	full := func(change map[string]string) map[string]string {
		env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "MONITOR_USERNAME": "ops", "MONITOR_PASSWORD": testPassword, "JOB_PROCESSOR_SECRET_TOKEN": testToken}
		for k, v := range change {
			env[k] = v
		}
		return env
	}
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string
		wantNot []string
	}{
		{"nothing set", nil, map[string]string{}, []string{"REDIS_URL", "MONITOR_USERNAME", "MONITOR_PASSWORD", "JOB_PROCESSOR_SECRET_TOKEN"}, nil},
		{"no credentials", nil, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, []string{"MONITOR_USERNAME", "MONITOR_PASSWORD", "JOB_PROCESSOR_SECRET_TOKEN", "-loopback-no-auth"}, nil},
		{"short token", nil, full(map[string]string{"JOB_PROCESSOR_SECRET_TOKEN": "s3cr3t-but-short"}), []string{"JOB_PROCESSOR_SECRET_TOKEN"}, []string{"s3cr3t-but-short"}},
		{"short password", nil, full(map[string]string{"MONITOR_PASSWORD": "hunter2"}), []string{"MONITOR_PASSWORD"}, []string{"hunter2"}},
		{"bad booleans", nil, full(map[string]string{"MONITOR_READ_ONLY": "maybe", "MONITOR_LOOPBACK_NO_AUTH": "sure"}), []string{"MONITOR_READ_ONLY", "MONITOR_LOOPBACK_NO_AUTH"}, nil},
		{"bad address", nil, full(map[string]string{"MONITOR_ADDR": "8080"}), []string{"MONITOR_ADDR"}, nil},
		{"bad replica count", nil, full(map[string]string{"REDIS_WAIT_REPLICAS": "one"}), []string{"REDIS_WAIT_REPLICAS"}, nil},
		{"bad -addr", []string{"-addr", "localhost:http-alt"}, full(nil), []string{"-addr"}, nil},
		{"loopback mode on a public address", []string{"-loopback-no-auth"}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "MONITOR_ADDR": "0.0.0.0:8080"}, []string{"MONITOR_ADDR", "loopback"}, nil},
		{"loopback mode on a public -addr", []string{"-addr", "10.1.2.3:8080"}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "MONITOR_LOOPBACK_NO_AUTH": "true"}, []string{"-addr", "loopback"}, nil},
		{"Redis URL password", nil, full(map[string]string{"REDIS_URL": "redis://:redispass@[bad"}), []string{"REDIS_URL"}, []string{"redispass"}},
		{"stray argument", []string{"serve"}, full(nil), []string{"unexpected arguments"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut peertest.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, c.args, envOf(c.env), &out, &errOut)
			if err == nil {
				t.Fatalf("got nil, want a start-up error; stdout %q", out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to name %s", err, w)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(err.Error()+out.String()+errOut.String(), w) {
					t.Errorf("the secret %q leaked: %q", w, err)
				}
			}
			if strings.Contains(out.String(), "listening") {
				t.Errorf("it listened despite the error: %q", out.String())
			}
		})
	}
}

// started is a run() in the background.
type started struct {
	url         string
	out, errOut *peertest.Buffer
	run         *escrowtest.Background
}

var listening = regexp.MustCompile(`monitor listening on (http://\S+)`)

func start(t *testing.T, args []string, env map[string]string) *started {
	t.Helper()
	s := &started{out: &peertest.Buffer{}, errOut: &peertest.Buffer{}}
	if _, ok := env["DEAD_LETTER_PATH"]; !ok {
		env["DEAD_LETTER_PATH"] = filepath.Join(t.TempDir(), "dead-letters.jsonl")
	}
	s.run = escrowtest.Start(t, "run", 5*time.Second, func(ctx context.Context) error { return run(ctx, args, envOf(env), s.out, s.errOut) })
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := listening.FindStringSubmatch(s.out.String()); m != nil {
			s.url = m[1]
			return s
		}
		if err, done := s.run.Exited(); done {
			t.Fatalf("run returned %v before listening; stderr %s", err, s.errOut.String())
		}
	}
	t.Fatalf("no listening line; stdout %q stderr %q", s.out.String(), s.errOut.String())
	return nil
}

// stop cancels the context and wants a clean, quick return.
func (s *started) stop(t *testing.T) {
	t.Helper()
	s.run.Stop()
}

func get(t *testing.T, method, url string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunServesEveryPartAndShutsDown(t *testing.T) {
	env := map[string]string{
		"REDIS_URL": peertest.Redis(t), "MONITOR_USERNAME": "ops", "MONITOR_PASSWORD": testPassword,
		"JOB_PROCESSOR_SECRET_TOKEN": testToken, "MONITOR_ADDR": "127.0.0.1:1", "LOG_LEVEL": "debug",
	}
	s := start(t, []string{"-addr", "127.0.0.1:0"}, env) // -addr overrides MONITOR_ADDR
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	job := `{"type":"send_release_email","payload":{"transactionId":"esc-1","recipientEmail":"jane.doe@example.com","amount":5,"currency":"USD"},"processIn":"1h"}`

	for _, c := range []struct {
		name, method, path string
		header             map[string]string
		body               string
		want               int
		wantBody           string
	}{
		{"health", "GET", "/healthz", nil, "", 200, `{"status":"ok"}`},
		{"metrics", "GET", "/metrics", nil, "", 200, "go_goroutines"},
		{"API without token", "GET", "/api/v1/stats", nil, "", 401, `"unauthorized"`},
		{"enqueue", "POST", "/api/v1/jobs", map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}, job, 201, `"id":"send_release_email:`},
		{"stats", "GET", "/api/v1/stats", bearer, "", 200, `"scheduled":1`},
		{"UI without login", "GET", "/monitor/", nil, "", 401, ""},
		{"UI", "GET", "/monitor/", map[string]string{"Authorization": "Basic b3BzOmNvcnJlY3QgaG9yc2UgYmF0dGVyeQ=="}, "", 200, "Asynq"},
		{"unknown route", "GET", "/wp-admin", nil, "", 404, `"not_found"`},
	} {
		code, body := get(t, c.method, s.url+c.path, c.header, c.body)
		if code != c.want || !strings.Contains(body, c.wantBody) {
			t.Errorf("%s: got %d %.200s, want %d with %q", c.name, code, body, c.want, c.wantBody)
		}
	}
	s.stop(t)
	logs := s.errOut.String()
	for _, secret := range []string{testToken, testPassword, "jane.doe@example.com"} {
		if strings.Contains(logs+s.out.String(), secret) {
			t.Errorf("the output holds %q", secret)
		}
	}
	if !strings.Contains(logs, `"msg":"monitor: request"`) {
		t.Errorf("got no request log lines: %.500s", logs)
	}
}

func TestLoopbackNoAuthListensOnLoopbackOnly(t *testing.T) {
	env := map[string]string{"REDIS_URL": peertest.Redis(t), "MONITOR_LOOPBACK_NO_AUTH": "true", "MONITOR_ADDR": ":0"}
	s := start(t, nil, env)
	if !strings.HasPrefix(s.url, "http://127.0.0.1:") {
		t.Errorf("got %s, want it bound to 127.0.0.1", s.url)
	}
	for _, path := range []string{"/monitor/", "/api/v1/stats"} {
		if code, body := get(t, "GET", s.url+path, nil, ""); code != 200 {
			t.Errorf("GET %s without credentials: got %d %.200s, want 200", path, code, body)
		}
	}
	if !strings.Contains(s.errOut.String(), "without authentication") {
		t.Errorf("no warning that it serves without authentication: %.500s", s.errOut.String())
	}
	s.stop(t)
}

func TestReadOnlyFlag(t *testing.T) {
	env := map[string]string{"REDIS_URL": peertest.Redis(t), "MONITOR_USERNAME": "ops", "MONITOR_PASSWORD": testPassword, "JOB_PROCESSOR_SECRET_TOKEN": testToken}
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"env", []string{"-addr", "127.0.0.1:0"}, map[string]string{"MONITOR_READ_ONLY": "true"}},
		{"flag", []string{"-addr", "127.0.0.1:0", "-read-only"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := map[string]string{}
			for k, v := range env {
				e[k] = v
			}
			for k, v := range c.env {
				e[k] = v
			}
			s := start(t, c.args, e)
			code, body := get(t, "POST", s.url+"/monitor/api/queues/default:pause", map[string]string{"Authorization": "Basic b3BzOmNvcnJlY3QgaG9yc2UgYmF0dGVyeQ=="}, "")
			if code != http.StatusMethodNotAllowed || !strings.Contains(body, `"read_only"`) {
				t.Errorf("pause in read-only mode: got %d %.200s, want 405 read_only", code, body)
			}
			s.stop(t)
		})
	}
}
