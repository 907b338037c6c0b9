package observe_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
)

// metricName finds our metric names in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:escrowjobs|asynq|process|go)_[a-zA-Z0-9_:]+`)

// TestDashboardReferencesRegisteredMetrics parses the Grafana dashboard
// (docs/grafana/escrowjobs.json) and checks that every metric it queries
// is one the worker or the monitor serves, scraped from both.
func TestDashboardReferencesRegisteredMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../docs/grafana/escrowjobs.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("the dashboard has no panels")
	}

	// Every family the two processes serve, with a job in each state so the
	// queue figures are all there.
	redisURL := peertest.Redis(t)
	opt, _ := asynq.ParseRedisURI(redisURL)
	enqueueEachLater(t, opt, "dash")
	ad := escrowtest.NewAdapters()
	worker := startInProcess(t, opt, ad.Deps(ad, discardLogger()))
	monURL := startMonitor(t, monitor.Config{RedisOpt: opt})
	served := map[string]bool{}
	for _, url := range []string{worker.url + "/metrics", monURL + "/metrics"} {
		for sample := range scrape(t, url) {
			name, _, _ := strings.Cut(sample, "{")
			served[name] = true
		}
	}

	var used []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names none of our metrics", p.Title, tg.Expr)
			}
			for _, n := range names {
				used = append(used, n)
				if !served[n] {
					t.Errorf("panel %q: got metric %s, which neither the worker nor the monitor serves", p.Title, n)
				}
			}
		}
	}
	// And the dashboard shows every per-type job metric.
	for _, m := range []string{"escrowjobs_jobs_processed_total", "escrowjobs_jobs_failed_total", "escrowjobs_jobs_retried_total",
		"escrowjobs_jobs_dead_lettered_total", "escrowjobs_job_duration_seconds_bucket", "escrowjobs_job_start_latency_seconds_bucket",
		"asynq_tasks_enqueued_total", "asynq_queue_latency_seconds"} {
		if !slices.Contains(used, m) {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
}
