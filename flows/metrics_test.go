package flows_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsCountTransitionsPerName(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	done := build(t, release("esc-m-1"))
	failed := build(t, release("esc-m-2"))
	// A flow that stays running: its only step is due in an hour.
	later := build(t, flows.New("refund", "esc-m-3").Step("audit", audit("evt-m-3"), flows.With(tasks.ProcessIn(time.Hour))))
	for _, f := range []*flows.Flow{done, failed, later} {
		if _, err := flows.Start(ctx, e.client, f); err != nil {
			t.Fatal(err)
		}
	}
	var fail atomic.Bool
	fail.Store(true)
	failCapture(e, "esc-m-2", &fail)
	e.startWorker(t, 8)
	e.awaitFlow(t, done.ID(), flows.StateCompleted)
	e.awaitFlow(t, failed.ID(), flows.StateFailed)
	time.Sleep(20 * time.Millisecond)
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.store.Collector())
	got := escrowtest.Gather(t, reg)
	for key, want := range map[string]float64{
		flows.MetricStarted + "{release}": 2, flows.MetricStarted + "{refund}": 1,
		flows.MetricCompleted + "{release}": 1, flows.MetricFailed + "{release}": 1,
	} {
		if got[key] != want {
			t.Errorf("%s: got %v, want %v (all: %v)", key, got[key], want, got)
		}
	}
	if age := got[flows.MetricOldestAge]; age <= 0 || age > 60 {
		t.Errorf("%s: got %v, want the age of the running refund flow", flows.MetricOldestAge, age)
	}
}
