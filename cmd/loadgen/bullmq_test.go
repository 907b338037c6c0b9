package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The probe's JSON lines as bench.js prints them (abridged to the fields
// it prints for each phase).
const (
	addLine     = `{"system":"bullmq","op":"add","n":2000,"label":"","bullmq":"6.7.0","goroutines":50,"mode":"add","done":2000,"errors":0,"elapsed_s":0.35,"jobs_per_s":5714.2,"p50_us":8123.5,"p99_us":15001,"latency_unit":"per call","client_cpu_s":0.42,"redis_cpu_s":0.16,"timed_out":false}`
	workLine    = `{"system":"bullmq","op":"work","n":2200,"label":"","bullmq":"6.7.0","concurrency":50,"handled":2200,"completed":2200,"failed":0,"elapsed_s":0.6,"jobs_per_s":3666.6,"client_cpu_s":0.61,"redis_cpu_s":0.27,"peak_rss_kb":90000,"counts_after":{"wait":0,"active":0,"completed":0,"failed":0},"timed_out":false,"keep_completed":false}`
	latencyLine = `{"system":"bullmq","op":"latency","n":300,"label":"","bullmq":"6.7.0","rate":33.3,"goroutines":1,"concurrency":50,"produced":300,"handled":300,"dup":0,"bad_payload":0,"errors":0,"missing":0,"idle_window_s":5.0,"idle_cmds_per_s":1.6,"idle_server_cpu_ms_per_s":0.4,"idle_cmds_by_name_per_s":{"bzpopmin":0.2,"evalsha":1.2,"info":0.2},"timed_out":false,"lat_count":300,"lat_p50_ms":1.71,"lat_p99_ms":3.52}`
)

func TestParseBullMQ(t *testing.T) {
	replace := func(line, old, new string) string { return strings.Replace(line, old, new, 1) }
	for _, c := range []struct {
		name, out, op string
		want          int
		check         func(bullmqResult) bool
		err           string // "" for none; else a part of the error
	}{
		{name: "add", out: addLine, op: "add", want: 2000, check: func(r bullmqResult) bool {
			return r.JobsPerS == 5714.2 && r.P50us == 8123.5 && r.P99us == 15001 && r.ClientCPUs == 0.42 && r.RedisCPUs == 0.16
		}},
		{name: "work", out: workLine, op: "work", want: 2200, check: func(r bullmqResult) bool {
			return r.JobsPerS == 3666.6 && r.ClientCPUs == 0.61 && r.RedisCPUs == 0.27 && r.Completed == 2200
		}},
		{name: "latency", out: latencyLine, op: "latency", want: 300, check: func(r bullmqResult) bool {
			return r.LatP50ms == 1.71 && r.LatP99ms == 3.52 && r.IdleCmdsPerS == 1.6 && r.IdleByName["bzpopmin"] == 0.2
		}},
		{name: "warnings before the result", out: "(node:12) Warning: something\n\n" + addLine + "\n\n", op: "add", want: 2000,
			check: func(r bullmqResult) bool { return r.Done == 2000 }},
		{name: "nothing", out: " \n", op: "add", want: 1, err: "printed nothing"},
		{name: "not JSON", out: "FATAL Error: connect ECONNREFUSED", op: "add", want: 1, err: "not its JSON result"},
		{name: "another phase", out: workLine, op: "add", want: 2200, err: `op "work"`},
		{name: "timed out", out: replace(replace(workLine, `"timed_out":false`, `"timed_out":true`), `"completed":2200`, `"completed":1000`), op: "work", want: 2200,
			err: "timed out after 1000 of 2200"},
		{name: "failed adds", out: replace(replace(addLine, `"errors":0`, `"errors":3`), `"timed_out":false`, `"timed_out":false,"first_error":"Error: OOM"`),
			op: "add", want: 2000, err: "3 adds failed, the first with: Error: OOM"},
		{name: "failed jobs", out: replace(workLine, `"failed":0`, `"failed":2`), op: "work", want: 2200, err: "0 adds and 2 jobs failed"},
		{name: "jobs missing", out: replace(replace(latencyLine, `"missing":0`, `"missing":4`), `"lat_count":300`, `"lat_count":296`), op: "latency", want: 300,
			err: "4 jobs never reached the processor"},
		{name: "jobs seen twice", out: replace(latencyLine, `"dup":0`, `"dup":1`), op: "latency", want: 300, err: "1 reached it twice"},
		{name: "fewer than asked", out: addLine, op: "add", want: 3000, err: "2000 of 3000 jobs"},
		{name: "negative figures", out: replace(addLine, `"redis_cpu_s":0.16`, `"redis_cpu_s":-0.16`), op: "add", want: 2000, err: "negative figures"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseBullMQ([]byte(c.out), c.op, c.want)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case c.err != "" && err == nil:
				t.Fatalf("got no error, want one containing %q", c.err)
			case c.err != "" && !strings.Contains(err.Error(), c.err):
				t.Fatalf("got error %q, want one containing %q", err, c.err)
			case c.err == "" && !c.check(got):
				t.Fatalf("got %+v, want the line's figures", got)
			}
		})
	}
}

func TestProbePort(t *testing.T) {
	for _, c := range []struct {
		url, port, err string
	}{
		{url: "redis://127.0.0.1:16400/0", port: "16400"},
		{url: "redis://127.0.0.1:16400", port: "16400"},
		{url: "redis://localhost:6390/", port: "6390"},
		{url: "redis://10.1.2.3:6379/0", err: "names another host"},
		{url: "redis://127.0.0.1:6379/15", err: "names database 15"},
		{url: "redis://:secret@127.0.0.1:6379/0", err: "has a password"},
		{url: "rediss://127.0.0.1:6379/0", err: "is not redis://"},
		{url: "redis://127.0.0.1/0", err: "has no port"},
	} {
		got, err := probePort(c.url)
		switch {
		case c.err == "" && (err != nil || got != c.port):
			t.Errorf("probePort(%q): got %q, %v; want %q", c.url, got, err, c.port)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("probePort(%q): got %q, %v; want an error containing %q", c.url, got, err, c.err)
		case c.err != "" && strings.Contains(err.Error(), "secret"):
			t.Errorf("probePort(%q): the error %q shows the password", c.url, err)
		}
	}
}

// A probe directory is checked before anything runs: bench.js, BullMQ
// installed (its version read for the table's header), node on PATH.
func TestNewBullMQProbeChecksTheInstall(t *testing.T) {
	const url = "redis://127.0.0.1:16400/0"
	found := func(string) (string, error) { return "/usr/bin/node", nil }
	write := func(t *testing.T, dir, name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()
	notInstalled := t.TempDir()
	write(t, notInstalled, "bench.js", "")
	installed := t.TempDir()
	write(t, installed, "bench.js", "")
	write(t, installed, "node_modules/bullmq/package.json", `{"name":"bullmq","version":"6.7.0"}`)
	for _, c := range []struct {
		name, dir, url string
		lookPath       func(string) (string, error)
		err            string
	}{
		{"installed", installed, url, found, ""},
		{"no bench.js", empty, url, found, "no bench.js"},
		{"not installed", notInstalled, url, found, "run npm ci --no-audit --no-fund in it"},
		{"no node", installed, url, func(string) (string, error) { return "", exec.ErrNotFound }, "apt-get install -y nodejs npm"},
		{"unreachable Redis", installed, "redis://127.0.0.1:16400/3", found, "names database 3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := newBullMQProbe(c.dir, c.url, c.lookPath)
			if c.err == "" {
				if err != nil || p.version != "6.7.0" || p.port != "16400" || p.node != "/usr/bin/node" {
					t.Fatalf("got %+v, %v; want version 6.7.0, port 16400, node /usr/bin/node", p, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("got %v, want an error containing %q", err, c.err)
			}
		})
	}
}

// A probe that fails (here: bench.js with BullMQ not installed beside
// it) fails the phase with node's own message; run with the real node.
func TestBullMQProbeFailureCarriesItsStderr(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH: install it with apt-get install -y nodejs npm: %v", err)
	}
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("..", "..", "bench", "bullmq", "bench.js"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.js"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &bullmqProbe{node: node, dir: dir, port: "1", version: "6.7.0"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = p.run(ctx, "add", 10, addArgs(10, 1)...)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(err.Error(), "Cannot find module 'bullmq'") || !strings.HasPrefix(err.Error(), "bullmq add: node bench.js:") {
		t.Fatalf("got %v, want node's exit error with its message that bullmq is missing", err)
	}
}

func TestProbeArgsMirrorLoadgen(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"add", addArgs(20000, 50), []string{"-n", "20000", "-c", "50"}},
		{"work", workArgs(22000, 50), []string{"-n", "22000", "-concurrency", "50"}},
		{"latency", latencyArgs(300, 50, 40*time.Millisecond, 5*time.Second),
			[]string{"-n", "300", "-rate", "25", "-c", "1", "-concurrency", "50", "-idle", "5", "-settle", "1.5"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestRotatedGivesEachSideEveryPlace(t *testing.T) {
	for _, c := range []struct {
		sides []string
		round int
		want  []string
	}{
		{[]string{"ours", "raw"}, 0, []string{"ours", "raw"}},
		{[]string{"ours", "raw"}, 1, []string{"raw", "ours"}},
		{[]string{"ours", "raw"}, 2, []string{"ours", "raw"}},
		{[]string{"ours", "raw", "bullmq"}, 0, []string{"ours", "raw", "bullmq"}},
		{[]string{"ours", "raw", "bullmq"}, 1, []string{"raw", "bullmq", "ours"}},
		{[]string{"ours", "raw", "bullmq"}, 2, []string{"bullmq", "ours", "raw"}},
		{[]string{"ours", "raw", "bullmq"}, 3, []string{"ours", "raw", "bullmq"}},
	} {
		in := slices.Clone(c.sides)
		if got := rotated(in, c.round); !slices.Equal(got, c.want) {
			t.Errorf("rotated(%q, %d): got %q, want %q", c.sides, c.round, got, c.want)
		}
		if !slices.Equal(in, c.sides) {
			t.Errorf("rotated(%q, %d) changed its argument to %q", c.sides, c.round, in)
		}
	}
}
