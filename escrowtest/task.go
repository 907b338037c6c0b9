package escrowtest

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/escrowjobs/escrowjobs/escrowtest/sample"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Task builds the job of payload p with opts the way the API and jobctl
// do (by its type name), and fails the test when p is invalid.
func Task(t testing.TB, p payloads.Payload, opts ...tasks.Option) *tasks.Task {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("marshal %T: %v", p, err)
	}
	task, err := tasks.FromJSON(p.TaskType(), raw, opts...)
	if err != nil {
		t.Fatalf("build %s job: %v", p.TaskType(), err)
	}
	return task
}

// All returns the sample payloads of every job type (escrowtest/sample),
// one each in the registry's order, with IDs made unique by seq.
func All(seq string) []payloads.Payload {
	first := sample.Payload(0, seq).TaskType()
	out := []payloads.Payload{sample.Payload(0, seq)}
	for i := 1; ; i++ {
		p := sample.Payload(i, seq)
		if p.TaskType() == first {
			return out
		}
		out = append(out, p)
	}
}

// Direct is job i of a series of the job types whose handler calls an
// adapter itself (every type but notify_dispute_resolved, whose effect is
// three other jobs), in turn, from the sample payloads, with IDs unique
// per (series, i) and containing series.
func Direct(series string, i int) payloads.Payload {
	var direct []payloads.Payload
	for _, p := range All(series + "-" + strconv.Itoa(i)) {
		if _, fanOut := p.(payloads.NotifyDisputeResolved); !fanOut {
			direct = append(direct, p)
		}
	}
	return direct[i%len(direct)]
}
