package observe_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// typeNames are the registered job types, in the registry's order.
func typeNames() []string {
	var out []string
	for _, t := range tasks.Types() {
		out = append(out, t.Name)
	}
	return out
}

// inProcess is a worker wired as cmd/server wires it (the Observer around
// the mux, the private registry, the endpoints), over the given handler
// dependencies.
type inProcess struct {
	w        *worker.Worker
	url      string // base URL of /healthz, /readyz, /metrics
	deadFile *deadletter.File
}

func startInProcess(t *testing.T, opt asynq.RedisConnOpt, deps handlers.Deps) *inProcess {
	t.Helper()
	reg := prometheus.NewRegistry()
	jm, err := observe.NewJobMetrics(reg, typeNames())
	if err != nil {
		t.Fatal(err)
	}
	mux, err := handlers.NewServeMux(deps)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := deadletter.OpenFile(filepath.Join(t.TempDir(), "dead-letters.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	w, err := worker.New(worker.Config{Redis: opt, Concurrency: 8, FetchLoops: 2, DeadLetters: dl,
		Logger: deps.Logger, ShutdownTimeout: 2 * time.Second}, observe.NewObserver(jm, nil).Wrap(mux))
	if err != nil {
		t.Fatal(err)
	}
	insp := tasks.NewInspector(opt)
	t.Cleanup(func() { insp.Close() })
	reg.MustRegister(observe.NewCached(queueCollector(insp), 0))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = observe.Serve(ctx, ln, observe.Endpoints{Ready: w.Ready, Gatherer: reg, Logger: deps.Logger}.Handler())
	}()
	t.Cleanup(func() { cancel(); <-done })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return &inProcess{w: w, url: "http://" + ln.Addr().String(), deadFile: dl}
}

// startMonitor serves the monitor of cfg, open to loopback clients without
// a login, until the test ends and returns its URL.
func startMonitor(t *testing.T, cfg monitor.Config) string {
	t.Helper()
	cfg.LoopbackNoAuth, cfg.Logger = true, discardLogger()
	mon, err := monitor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	srv := httptest.NewServer(mon.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// enqueueEachLater enqueues a job of each type (escrowtest.All(seq)), due in
// an hour, so that the queue figures are all there and stay put.
func enqueueEachLater(t *testing.T, opt asynq.RedisConnOpt, seq string) {
	t.Helper()
	client := tasks.NewClient(opt)
	defer client.Close()
	for _, p := range escrowtest.All(seq) {
		if _, err := client.Enqueue(t.Context(), escrowtest.Task(t, p, tasks.ProcessIn(time.Hour))); err != nil {
			t.Fatalf("%s: %v", p.TaskType(), err)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// sampleLine is one Prometheus text sample: name{labels} value.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

// scrape GETs url and returns every sample as "name{labels}" → value.
func scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: got %d %s", url, res.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[m[1]+m[2]] = v
	}
	return out
}

// typed is the sample key of a per-type series.
func typed(name, typ string) string { return fmt.Sprintf(`%s{type=%q}`, name, typ) }

// queueCollector is the queue-figures collector both binaries cache.
func queueCollector(in *tasks.Inspector) prometheus.Collector {
	return metrics.NewQueueMetricsCollector(in.Asynq())
}
