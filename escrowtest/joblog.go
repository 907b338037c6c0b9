package escrowtest

import (
	"encoding/json"
	"strings"
)

// JobRuns counts, per job ID, the "job done" and "job failed…" lines in the
// JSON log output of worker processes (peertest.Process.Output).
func JobRuns(outputs ...string) (done, failed map[string]int) {
	done, failed = map[string]int{}, map[string]int{}
	for _, out := range outputs {
		for _, line := range strings.Split(out, "\n") {
			var l struct {
				Msg    string `json:"msg"`
				TaskID string `json:"task_id"`
			}
			if json.Unmarshal([]byte(line), &l) != nil || l.TaskID == "" {
				continue
			}
			switch {
			case l.Msg == "job done":
				done[l.TaskID]++
			case strings.HasPrefix(l.Msg, "job failed"):
				failed[l.TaskID]++
			}
		}
	}
	return done, failed
}
