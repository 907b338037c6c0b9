package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/escrowjobs/escrowjobs/audit"
)

// helperEnv makes this test binary a writer process: it writes the events
// ev-0 … ev-<n-1> to the audit file named by the variable, starting at a
// different event per process, and exits.
const helperEnv = "AUDIT_TEST_WRITER_PATH"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(writer(path))
	}
	os.Exit(m.Run())
}

func writer(path string) int {
	n, _ := strconv.Atoi(os.Getenv("AUDIT_TEST_WRITER_EVENTS"))
	start, _ := strconv.Atoi(os.Getenv("AUDIT_TEST_WRITER_START"))
	f, err := audit.OpenFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	for i := range n {
		if err := f.WriteAudit(context.Background(), event(fmt.Sprintf("ev-%d", (i+start)%n))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// TestFileSharedByProcesses: three worker processes and two sinks in this
// process write the same 300 events to one file at the same time, every
// writer in its own order. Each event is in the file exactly once, and no
// line is torn or glued to another.
func TestFileSharedByProcesses(t *testing.T) {
	const events, procs = 300, 3
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for p := range procs {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+path, "AUDIT_TEST_WRITER_EVENTS="+strconv.Itoa(events),
			"AUDIT_TEST_WRITER_START="+strconv.Itoa(p*events/procs))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	var wg sync.WaitGroup
	for s := range 2 {
		f := open(t, path)
		wg.Go(func() {
			for i := range events {
				if err := f.WriteAudit(context.Background(), event(fmt.Sprintf("ev-%d", (events-i+s*7)%events))); err != nil {
					t.Errorf("in-process sink %d: %v", s, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer process %d: %v", i, err)
		}
	}
	raw, ids := lines(t, path)
	counts := map[string]int{}
	for _, id := range ids {
		counts[id]++
	}
	var doubled []string
	for id, n := range counts {
		if n > 1 {
			doubled = append(doubled, fmt.Sprintf("%s×%d", id, n))
		}
	}
	slices.Sort(doubled)
	doubled = doubled[:min(len(doubled), 10)]
	if len(raw) != events || len(counts) != events || len(doubled) > 0 {
		t.Errorf("got %d lines, %d distinct events, doubled (first 10) %v; want %d lines, each event once", len(raw), len(counts), doubled, events)
	}
	for i, l := range raw {
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.EventID == "" {
			t.Errorf("line %d: got %q (%v), want one whole record", i+1, l, err)
		}
	}
}
