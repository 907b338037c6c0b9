package process_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// spread evenly over the three queues and all enqueued before the workers
// start, so the order in which they complete shows the queue weights
// (critical 6, default 3, low 1): critical leads the first 30 % of
// completions, then default, then low, and the queues drain in that order.
func TestThreeWorkersRun20000JobsOnceEachByQueueWeight(t *testing.T) {
	h := setup(t, false)
	const total, workers = 20000, 3
	queues := []string{payloads.QueueCritical, payloads.QueueDefault, payloads.QueueLow}
	queueOf := map[string]string{} // eventId → queue
	ids := make([]string, total)
	for i := range total {
		q := queues[i%len(queues)]
		ids[i] = fmt.Sprintf("pf-load-%s-%d", q, i)
		queueOf[ids[i]] = q
	}

	// Enqueue through the typed constructor (validation, job ID, retention),
	// overriding only the queue: the handler is the same in every queue.
	raw := asynq.NewClient(h.opt)
	defer raw.Close()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < total; i += 16 {
				task, err := tasks.NewAuditLogCreatedTask(payloads.AuditLogCreated{
					EventID: ids[i], Actor: "loadgen", Action: "escrow.funded", OccurredAt: occurredAt})
				if err == nil {
					_, err = raw.EnqueueContext(context.Background(), task.Task, asynq.Queue(queueOf[ids[i]]))
				}
				if err != nil {
					errs <- fmt.Errorf("enqueue %s: %w", ids[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	perQueue := map[string]int{}
	for _, q := range queueOf {
		perQueue[q]++
	}
	t.Logf("enqueued %d jobs (critical %d, default %d, low %d) in %.1f s", total,
		perQueue[payloads.QueueCritical], perQueue[payloads.QueueDefault], perQueue[payloads.QueueLow], time.Since(start).Seconds())

	paths := make([]string, workers)
	procs := make([]*peertest.Process, workers)
	for w := range workers {
		paths[w] = filepath.Join(h.dir, fmt.Sprintf("audit-%d.jsonl", w+1))
		procs[w] = h.startServer(t, fmt.Sprintf("w%d", w+1), map[string]string{"AUDIT_LOG_PATH": paths[w], "WORKER_CONCURRENCY": "50"})
	}
	start = time.Now()
	deadline := start.Add(150 * time.Second)
	for {
		stats, err := h.insp.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		completed, archived := 0, 0
		for _, s := range stats {
			completed += s.Completed
			archived += s.Archived
		}
		if archived > 0 {
			t.Fatalf("%d jobs archived, want none", archived)
		}
		if completed == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d jobs completed", time.Since(start), completed, total)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// No job is left active or leased: the counts below cannot grow by a
	// lease recovery later.
	escrowtest.NoLeases(t, h.opt)
	for _, p := range procs {
		p.Signal(syscall.SIGTERM)
	}
	for i, p := range procs {
		if _, ok := p.Wait(15 * time.Second); !ok {
			t.Errorf("server w%d did not exit within 15 s of SIGTERM", i+1)
		}
	}

	// Exactly once, twice over: every handler run is one "job done" log line
	// (across processes), and every event one line in the audit files.
	runs := map[string]int{}
	perProc := make([]int, workers)
	for i, p := range procs {
		for _, line := range strings.Split(p.Output(), "\n") {
			if !strings.Contains(line, `"msg":"job done"`) {
				continue
			}
			var l struct {
				TaskID string `json:"task_id"`
			}
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("server w%d: log line %q: %v", i+1, line, err)
			}
			runs[l.TaskID]++
			perProc[i]++
		}
	}
	lines := readAudit(t, paths...)
	written := map[string]int{}
	perFile := make([]int, workers)
	for _, l := range lines {
		written[l.EventID]++
		perFile[l.file]++
	}
	var lost, doubled []string
	for _, id := range ids {
		jobID := "audit_log_created:audit-" + id
		switch {
		case runs[jobID] == 0 || written[id] == 0:
			lost = append(lost, fmt.Sprintf("%s (runs %d, lines %d)", id, runs[jobID], written[id]))
		case runs[jobID] > 1 || written[id] > 1:
			doubled = append(doubled, fmt.Sprintf("%s (runs %d, lines %d)", id, runs[jobID], written[id]))
		}
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].RecordedAt.Before(lines[j].RecordedAt) })
	span := lines[len(lines)-1].RecordedAt.Sub(lines[0].RecordedAt)
	t.Logf("many workers: jobs in %d, handler runs %d, audit lines %d (per process %v runs, %v lines), lost %d, doubled %d; %.0f jobs/s over %.1f s",
		total, len(runs), len(lines), perProc, perFile, len(lost), len(doubled), float64(len(lines))/span.Seconds(), span.Seconds())
	if len(lost) > 0 || len(doubled) > 0 || len(runs) != total || len(lines) != total {
		t.Errorf("got %d distinct runs and %d lines for %d jobs; lost %d (%v), doubled %d (%v); want each job run and written once",
			len(runs), len(lines), total, len(lost), firstN(lost, 5), len(doubled), firstN(doubled, 5))
	}
	for w, n := range perProc {
		if n == 0 {
			t.Errorf("server w%d ran no job: the three workers did not share the load", w+1)
		}
	}

	// Queue weights: shares of the first 30 % of completions, and the
	// position at which each queue's last job completed.
	head := len(lines) * 30 / 100
	share := map[string]float64{}
	lastAt := map[string]int{}
	for i, l := range lines {
		q := queueOf[l.EventID]
		if i < head {
			share[q] += 1 / float64(head)
		}
		lastAt[q] = i
	}
	t.Logf("first 30%% of completions: critical %.2f, default %.2f, low %.2f (weights 6:3:1 → 0.60, 0.30, 0.10); queue drained at completion #%d critical, #%d default, #%d low",
		share[payloads.QueueCritical], share[payloads.QueueDefault], share[payloads.QueueLow],
		lastAt[payloads.QueueCritical]+1, lastAt[payloads.QueueDefault]+1, lastAt[payloads.QueueLow]+1)
	if !(share[payloads.QueueCritical] > share[payloads.QueueDefault] && share[payloads.QueueDefault] > share[payloads.QueueLow]) {
		t.Errorf("first 30%% of completions: got shares critical %.2f, default %.2f, low %.2f; want critical > default > low",
			share[payloads.QueueCritical], share[payloads.QueueDefault], share[payloads.QueueLow])
	}
	if !(lastAt[payloads.QueueCritical] < lastAt[payloads.QueueDefault] && lastAt[payloads.QueueDefault] < lastAt[payloads.QueueLow]) {
		t.Errorf("queues drained at completions critical #%d, default #%d, low #%d; want critical first, then default, then low",
			lastAt[payloads.QueueCritical]+1, lastAt[payloads.QueueDefault]+1, lastAt[payloads.QueueLow]+1)
	}
	h.scanLogs(t)
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }
