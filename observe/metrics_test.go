package observe_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// behaviour is what the adapters do with one job's attempts.
type behaviour int

const (
	succeed   behaviour = iota
	flaky               // fails attempts 1 and 2, then succeeds
	exhausted           // fails every attempt: 4 attempts, then a dead letter
	permanent           // fails attempt 1 with asynq.SkipRetry: a dead letter at once
)

// TestWorkerMetricsCountEachTypeExactly runs the real worker with the
// Observer (as cmd/server wires it) over a known mix of the nine types,
// two jobs that succeed, one flaky, one that exhausts its retries and one
// that fails permanently per type, scrapes /metrics while it works and
// checks every per-type counter and histogram count at the end.
func TestWorkerMetricsCountEachTypeExactly(t *testing.T) {
	t.Parallel()
	opt := escrowtest.RedisOpt(t, map[string]string{"REDIS_URL": peertest.Redis(t)})
	ad := escrowtest.NewAdapters()
	plan := map[string]behaviour{}
	var mu sync.Mutex
	ad.FailWith(func(id string, attempt int) error {
		mu.Lock()
		b := plan[id]
		mu.Unlock()
		switch {
		case b == flaky && attempt <= 2, b == exhausted:
			return fmt.Errorf("injected failure of attempt %d", attempt)
		case b == permanent:
			return fmt.Errorf("injected permanent failure: %w", asynq.SkipRetry)
		}
		return nil
	})
	p := startInProcess(t, opt, ad.Deps(ad, discardLogger()))

	client := tasks.NewClient(opt)
	defer client.Close()
	insp := tasks.NewInspector(opt)
	defer insp.Close()
	mix := []behaviour{succeed, succeed, flaky, exhausted, permanent}
	want := map[string]string{} // job ID → final state
	for i, b := range mix {
		for _, pl := range escrowtest.All(fmt.Sprintf("m%d", i)) {
			task := escrowtest.Task(t, pl)
			mu.Lock()
			plan[task.ID] = b
			mu.Unlock()
			if _, err := client.Enqueue(t.Context(), task); err != nil {
				t.Fatal(err)
			}
			want[task.ID] = "completed"
			if b == exhausted || b == permanent {
				want[task.ID] = "archived"
			}
		}
	}

	// Scrapes while the jobs run never see a counter go down.
	stop := make(chan struct{})
	scraped := make(chan error, 1)
	go func() {
		prev := map[string]float64{}
		for {
			select {
			case <-stop:
				scraped <- nil
				return
			case <-time.After(200 * time.Millisecond):
			}
			for k, v := range scrape(t, p.url+"/metrics") {
				if strings.HasPrefix(k, "escrowjobs_jobs_") && v < prev[k] {
					scraped <- fmt.Errorf("%s went down from %v to %v", k, prev[k], v)
					return
				}
				prev[k] = v
			}
		}
	}()
	for id, state := range want {
		escrowtest.AwaitState(t, insp, id, state, 60*time.Second)
	}
	close(stop)
	if err := <-scraped; err != nil {
		t.Error(err)
	}

	got := scrape(t, p.url+"/metrics")
	// Per type: 2 + 1 successes; failures 2 (flaky) + 4 (exhausted) + 1
	// (permanent); retries 2 + 3; dead letters 1 + 1; 5 first attempts
	// and 10 attempts in all.
	wants := []struct {
		metric string
		want   float64
	}{
		{observe.MetricProcessed, 3},
		{observe.MetricFailed, 7},
		{observe.MetricRetried, 5},
		{observe.MetricDeadLettered, 2},
		{observe.MetricDuration + "_count", 10},
		{observe.MetricStartLatency + "_count", 5},
	}
	for _, typ := range typeNames() {
		for _, w := range wants {
			key := typed(w.metric, typ)
			if v, ok := got[key]; !ok || v != w.want {
				t.Errorf("%s: got %v (present %v), want %v", key, v, ok, w.want)
			}
		}
	}
	// The queue figures are there too.
	if _, ok := got[`asynq_tasks_enqueued_total{queue="critical",state="archived"}`]; !ok {
		t.Errorf("no asynq_tasks_enqueued_total for the critical queue's archived jobs in the scrape")
	}
	page, err := p.deadFile.List(t.Context(), deadletter.Filter{}, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if dead, want := len(page.Entries), 2*len(typeNames()); dead != want {
		t.Errorf("dead-letter log: got %d entries, want %d (metrics must agree with it)", dead, want)
	}
}
