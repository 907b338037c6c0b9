package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/escrowjobs/escrowjobs/tasks"
)

// lastErrorWidth is how much of a last error the dead-letter table shows.
const lastErrorWidth = 60

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// writeFields prints "key: value" lines with the values in one column;
// fill calls line once a line.
func writeFields(w io.Writer, fill func(line func(k, v string))) error {
	tw := table(w)
	fill(func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) })
	return tw.Flush()
}

// writeJob prints one job as "key: value" lines.
func writeJob(w io.Writer, j tasks.Job) error {
	return writeFields(w, func(line func(k, v string)) {
		line("id", j.ID)
		line("type", j.Type)
		line("queue", j.Queue)
		line("state", j.State)
		line("attempts", strconv.Itoa(j.Attempts))
		line("max retry", strconv.Itoa(j.MaxRetry))
		if j.LastError != "" {
			line("last error", cell(j.LastError))
		}
		if j.LastFailedAt != nil {
			line("last failed at", stamp(j.LastFailedAt))
		}
		if j.NextProcessAt != nil && j.State != "completed" && j.State != "archived" {
			v := stamp(j.NextProcessAt)
			if d := time.Until(*j.NextProcessAt); d > 0 {
				v += " (in " + d.Round(time.Second).String() + ")"
			}
			line("next process at", v)
		}
		if j.CompletedAt != nil {
			line("completed at", stamp(j.CompletedAt))
		}
		if len(j.Payload) > 0 {
			line("payload", cell(string(j.Payload)))
		}
		if len(j.Result) > 0 {
			line("result", cell(string(j.Result)))
		}
	})
}

// writeStats prints the queues × counts table.
func writeStats(w io.Writer, qs []tasks.QueueStats) error {
	tw := table(w)
	fmt.Fprintln(tw, "QUEUE\tPENDING\tACTIVE\tSCHEDULED\tRETRY\tARCHIVED\tCOMPLETED\tPROCESSED TODAY\tFAILED TODAY\tLATENCY\tPAUSED")
	for _, q := range qs {
		paused := "no"
		if q.Paused {
			paused = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n",
			q.Queue, q.Pending, q.Active, q.Scheduled, q.Retry, q.Archived, q.Completed,
			q.ProcessedToday, q.FailedToday, (time.Duration(q.LatencyMS) * time.Millisecond).String(), paused)
	}
	return tw.Flush()
}

// cell puts s on one line without tabs, so it stays in its column.
func cell(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
