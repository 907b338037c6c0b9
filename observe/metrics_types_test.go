package observe_test

import (
	"context"
	"errors"
	"testing"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// The series of the types given to NewJobMetrics are looked up once; an
// attempt of a type it was not given is counted all the same.
func TestObserverCountsTypesItWasNotGiven(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := observe.NewJobMetrics(reg, []string{"known"})
	if err != nil {
		t.Fatal(err)
	}
	h := observe.NewObserver(m, nil).Wrap(asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
		if t.Type() == "failing" {
			return errors.New("injected")
		}
		return nil
	}))
	for _, typ := range []string{"known", "known", "unknown", "failing"} {
		_ = h.ProcessTask(context.Background(), asynq.NewTask(typ, nil))
	}
	got := escrowtest.Gather(t, reg)
	for key, want := range map[string]float64{
		observe.MetricProcessed + "{known}":   2,
		observe.MetricProcessed + "{unknown}": 1,
		observe.MetricFailed + "{failing}":    1,
		observe.MetricFailed + "{known}":      0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s: got %v (present %v), want %v", key, v, ok, want)
		}
	}
}
