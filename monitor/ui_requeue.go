package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/internal/asynqkey"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
)

// uiActor is the actor recorded for the UI when it has no login (loopback
// mode).
const uiActor = "monitor-ui"

// uiReason is the reason recorded for a requeue from the UI.
const uiReason = "Run in the monitor UI"

// requeueFromUI takes every "Run" route of asynqmon (one job, a
// selection, or all of a queue or group; asynqmon v0.7.2's router), so no
// Run moves a job asynqmon's own way: asynq moves a task by the state in
// its hash, whatever the route, and a Run on a stale row would send a
// completed job (kept an hour for dedupe) back to pending, to run again.
//
//   - archived_tasks: the same requeue as the API's and jobctl's: the full
//     retry budget, no window where the job exists nowhere, and the
//     ledger records the Basic-auth user as the actor. (asynq's own run
//     keeps the spent retry budget and so gives a dead letter a single
//     attempt, and tells the ledger nothing.)
//   - scheduled_tasks, retry_tasks, groups/{g}/aggregating_tasks: a job
//     moves to pending only if Redis holds it in the state the route
//     names (runTask, one script); any other is refused, 409 for one job.
//
// Any other POST that ends in :run, :run_all or :batch_run is refused
// (404), never passed to asynqmon. Other routes pass through.
func (m *Monitor) requeueFromUI(next http.Handler) http.Handler {
	prefix := RootPath + "/api/queues/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if r.Method != http.MethodPost || !ok {
			next.ServeHTTP(w, r)
			return
		}
		rt, ok := parseRunRoute(rest)
		if !ok {
			if isRunRoute(rest) {
				http.Error(w, "no such run route", http.StatusNotFound)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		actor := uiActor
		if u, _, ok := r.BasicAuth(); ok && u != "" {
			actor = u
		}
		run := func(id string) error {
			if rt.state == "archived" {
				_, err := m.deadLetterDesk().Requeue(r.Context(), id, actor, uiReason)
				if err != nil {
					m.log.Warn("monitor: requeue from the UI failed", "task_id", id, "actor", actor, "error", err.Error())
				} else {
					m.log.Info("monitor: dead letter requeued", "task_id", id, "actor", actor, "remote", r.RemoteAddr)
				}
				return err
			}
			err := runTask(r.Context(), m.inspector.Redis(), rt, id)
			if err != nil {
				m.log.Warn("monitor: run from the UI refused", "task_id", id, "queue", rt.queue, "route", rt.state, "actor", actor, "error", err.Error())
			} else {
				m.log.Info("monitor: job run from the UI", "task_id", id, "queue", rt.queue, "from", rt.state, "actor", actor, "remote", r.RemoteAddr)
			}
			return err
		}
		switch rt.verb {
		case "run":
			if err := run(rt.id); err != nil {
				http.Error(w, err.Error(), uiStatus(err))
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case "batch_run":
			var req struct {
				TaskIDs []string `json:"task_ids"`
			}
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				http.Error(w, "bad request body", http.StatusBadRequest)
				return
			}
			resp := struct {
				PendingIDs []string `json:"pending_ids"`
				ErrorIDs   []string `json:"error_ids"`
			}{PendingIDs: []string{}, ErrorIDs: []string{}}
			for _, id := range req.TaskIDs {
				if err := run(id); err != nil {
					resp.ErrorIDs = append(resp.ErrorIDs, id)
					continue
				}
				resp.PendingIDs = append(resp.PendingIDs, id)
			}
			writeJSON(w, http.StatusOK, resp)
		case "run_all":
			var n int
			if rt.state == "archived" {
				b, err := m.deadLetterDesk().RequeueMatching(r.Context(), deadletter.Filter{Queue: rt.queue}, false, actor, uiReason)
				if err != nil {
					http.Error(w, err.Error(), uiStatus(err))
					return
				}
				m.log.Info("monitor: run all from the UI", "queue", rt.queue, "actor", actor, "requeued", b.Requeued, "failed", len(b.Failed))
				n = b.Requeued
			} else {
				var err error
				if n, err = runAll(r.Context(), m.inspector.Redis(), rt); err != nil {
					http.Error(w, err.Error(), uiStatus(err))
					return
				}
				m.log.Info("monitor: run all from the UI", "queue", rt.queue, "from", rt.state, "group", rt.group, "actor", actor, "moved", n)
			}
			writeJSON(w, http.StatusOK, struct {
				Scheduled int `json:"scheduled"`
			}{n})
		}
	})
}

// runRoute is one of asynqmon's Run routes: the queue (and group), the
// state its rows show, the verb (run, batch_run, run_all) and, for run,
// the job ID.
type runRoute struct {
	queue, group, state, verb, id string
}

// runStates maps the task lists of asynqmon's routes to asynq's states.
var runStates = map[string]string{
	"archived_tasks":    "archived",
	"scheduled_tasks":   "scheduled",
	"retry_tasks":       "retry",
	"aggregating_tasks": "aggregating",
}

// parseRunRoute reads rest, the path after RootPath/api/queues/:
// "{q}/{list}/{id}:run", "{q}/{list}:run_all", "{q}/{list}:batch_run",
// the list inside "groups/{g}/" for aggregating_tasks.
func parseRunRoute(rest string) (runRoute, bool) {
	var rt runRoute
	q, list, ok := strings.Cut(rest, "/")
	if !ok || q == "" {
		return rt, false
	}
	rt.queue = q
	if after, ok := strings.CutPrefix(list, "groups/"); ok {
		g, tail, ok := strings.Cut(after, "/")
		if !ok || g == "" {
			return rt, false
		}
		rt.group, list = g, tail
	}
	for name, state := range runStates {
		after, ok := strings.CutPrefix(list, name)
		if !ok {
			continue
		}
		if (state == "aggregating") != (rt.group != "") {
			return rt, false // aggregating tasks live under a group, the others not
		}
		rt.state = state
		switch {
		case after == ":run_all":
			rt.verb = "run_all"
		case after == ":batch_run":
			rt.verb = "batch_run"
		case strings.HasPrefix(after, "/") && strings.HasSuffix(after, ":run") && len(after) > len("/:run"):
			rt.verb, rt.id = "run", strings.TrimSuffix(after[1:], ":run")
		default:
			return rt, false
		}
		return rt, true
	}
	return rt, false
}

// isRunRoute reports whether rest looks like a Run route at all.
func isRunRoute(rest string) bool {
	return strings.HasSuffix(rest, ":run") || strings.HasSuffix(rest, ":run_all") || strings.HasSuffix(rest, ":batch_run")
}

// errWrongState is returned by runTask for a job that Redis holds in
// another state than the route's.
var errWrongState = errors.New("the job is not in the state its row shows")

// runTaskScript moves one job to pending if its hash says it is in the
// route's state (and group): asynq's RunTask, which moves a job by
// whatever state its hash holds, plus that check.
//
// KEYS[1] the task hash, KEYS[2] the pending list, KEYS[3] the route's
// sorted set, KEYS[4] the queue's set of groups; ARGV[1] the job ID,
// ARGV[2] the state, ARGV[3] the group ("" but for aggregating), ARGV[4]
// now (Unix ns). It returns {1} when moved, {0} when there is no such
// job, {-1, state} otherwise.
var runTaskScript = redis.NewScript(`
local state, group = unpack(redis.call("HMGET", KEYS[1], "state", "group"))
if not state then
	return {0}
end
if state ~= ARGV[2] or (ARGV[2] == "aggregating" and group ~= ARGV[3]) then
	return {-1, state}
end
if redis.call("ZREM", KEYS[3], ARGV[1]) == 0 then
	return {-1, state}
end
if ARGV[2] == "aggregating" and redis.call("ZCARD", KEYS[3]) == 0 then
	redis.call("SREM", KEYS[4], ARGV[3])
end
redis.call("LPUSH", KEYS[2], ARGV[1])
redis.call("HSET", KEYS[1], "state", "pending", "pending_since", ARGV[4])
return {1}
`)

// runAllScript moves to pending every member of the route's sorted set
// whose hash says it is in the route's state (and group), and leaves the
// others where they are.
//
// KEYS[1] the route's sorted set, KEYS[2] the pending list, KEYS[3] the
// queue's set of groups; ARGV[1] the task key prefix, ARGV[2] the state,
// ARGV[3] the group, ARGV[4] now (Unix ns). It returns how many it moved.
var runAllScript = redis.NewScript(`
local n = 0
for _, id in ipairs(redis.call("ZRANGE", KEYS[1], 0, -1)) do
	local key = ARGV[1] .. id
	local state, group = unpack(redis.call("HMGET", key, "state", "group"))
	if state == ARGV[2] and (ARGV[2] ~= "aggregating" or group == ARGV[3]) then
		redis.call("ZREM", KEYS[1], id)
		redis.call("LPUSH", KEYS[2], id)
		redis.call("HSET", key, "state", "pending", "pending_since", ARGV[4])
		n = n + 1
	end
end
if ARGV[2] == "aggregating" and redis.call("ZCARD", KEYS[1]) == 0 then
	redis.call("SREM", KEYS[3], ARGV[3])
end
return n
`)

// routeSet is the sorted set that holds rt's rows.
func routeSet(rt runRoute) string {
	if rt.state == "aggregating" {
		return asynqkey.Group(rt.queue, rt.group)
	}
	return asynqkey.Prefix(rt.queue) + rt.state
}

// runTask moves job id to pending if Redis holds it in rt's state.
func runTask(ctx context.Context, rc redis.UniversalClient, rt runRoute, id string) error {
	keys := []string{asynqkey.Task(rt.queue, id), asynqkey.Pending(rt.queue), routeSet(rt), asynqkey.Groups(rt.queue)}
	res, err := runTaskScript.Run(ctx, rc, keys, id, rt.state, rt.group, time.Now().UnixNano()).Slice()
	if err != nil {
		return fmt.Errorf("run %s: %w", id, err)
	}
	code, _ := res[0].(int64)
	switch code {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("run %s: no job %s in queue %s: %w", id, id, rt.queue, tasks.ErrNotFound)
	}
	state := "?"
	if len(res) > 1 {
		state, _ = res[1].(string)
	}
	return fmt.Errorf("run %s: the job is %s, not %s (the page is out of date); nothing was moved: %w", id, state, rt.state, errWrongState)
}

// runAll moves every job of rt's list that Redis holds in rt's state.
func runAll(ctx context.Context, rc redis.UniversalClient, rt runRoute) (int, error) {
	keys := []string{routeSet(rt), asynqkey.Pending(rt.queue), asynqkey.Groups(rt.queue)}
	n, err := runAllScript.Run(ctx, rc, keys, asynqkey.Task(rt.queue, ""), rt.state, rt.group, time.Now().UnixNano()).Int()
	if err != nil {
		return 0, fmt.Errorf("run all %s of queue %s: %w", rt.state, rt.queue, err)
	}
	return n, nil
}

func uiStatus(err error) int {
	switch {
	case errors.Is(err, deadletter.ErrNotFound), errors.Is(err, tasks.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, deadletter.ErrNotOpen), errors.Is(err, repair.ErrCannotRebuild), errors.Is(err, repair.ErrConflict),
		errors.Is(err, repair.ErrStillActive), errors.Is(err, errWrongState):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
