package tasks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is returned by Enqueue, with the job's ID, when the
// client waits for replicas (WaitReplicas) and fewer than asked for
// acknowledged the job within the enqueue deadline. The master holds the
// job and it will probably run, but it is not durable: an unplanned
// failover now could lose it. Treat it like any failed enqueue (retry it,
// or keep it in an outbox); a retry that finds the job already there gets
// ErrDuplicate.
var ErrNotReplicated = errors.New("job may not be durable: not acknowledged by enough replicas")

// ClientOption configures a Client.
type ClientOption func(*Client)

// WaitReplicas makes Enqueue return success only once n replicas hold the
// job (Redis WAIT on the connection that wrote it, within the enqueue
// deadline), else ErrNotReplicated. n <= 0 does not wait (the default):
// Redis replication is asynchronous, and an unplanned failover can lose
// the last enqueues the master acknowledged.
func WaitReplicas(n int) ClientOption {
	return func(c *Client) { c.waitReplicas = max(n, 0) }
}

// ClientOptionsFromEnv reads REDIS_WAIT_REPLICAS (a whole number of
// replicas, default 0). The error names the variable.
func ClientOptionsFromEnv(getenv func(string) string) ([]ClientOption, error) {
	raw := strings.TrimSpace(getenv("REDIS_WAIT_REPLICAS"))
	if raw == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 || n > 100 {
		return nil, fmt.Errorf("REDIS_WAIT_REPLICAS: want a whole number of replicas from 0 to 100, got %q", raw)
	}
	return []ClientOption{WaitReplicas(n)}, nil
}

// replicaWait is the outcome of the WAITs of one Enqueue, filled in by
// waitHook on the connections that wrote.
type replicaWait struct {
	mu    sync.Mutex
	acked int // fewest replicas that acknowledged a write; -1: none yet
	err   error
}

func (r *replicaWait) record(n int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && r.err == nil {
		r.err = err
	}
	if r.acked < 0 || n < r.acked {
		r.acked = n
	}
}

type replicaWaitKey struct{}

// waitMargin is how long before the enqueue deadline WAIT gives up.
const waitMargin = 300 * time.Millisecond

// waitHook sends WAIT right after asynq's enqueue (or schedule) script, in
// the same pipeline, so WAIT runs on the connection that wrote. The wake
// publisher (an outer hook) already sends the script in a pipeline with
// its PUBLISH; this hook appends to that pipeline a small barrier write in
// the job's hash slot and WAIT. (WAIT waits for the connection's last
// write, and a script that found the job already there, a duplicate,
// writes nothing: the barrier makes WAIT cover the earlier enqueue of that
// job too.) A script that reaches this hook alone (one the wake publisher
// does not recognise) is sent as a one-command pipeline, so it gets its
// WAIT all the same. On a Cluster the hook is on every node's client, so
// the script, the barrier and WAIT go to the shard that holds the job.
// Commands outside an Enqueue with WaitReplicas pass through untouched.
type waitHook struct {
	rc *redis.Client
	n  int
}

func (h waitHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h waitHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if _, ok := ctx.Value(replicaWaitKey{}).(*replicaWait); !ok || !isScript(cmd) {
			return next(ctx, cmd)
		}
		pipe := h.rc.Pipeline() // through ProcessPipelineHook below
		_ = pipe.Process(ctx, cmd)
		_, _ = pipe.Exec(ctx)
		return cmd.Err()
	}
}

func (h waitHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		rw, ok := ctx.Value(replicaWaitKey{}).(*replicaWait)
		if !ok {
			return next(ctx, cmds)
		}
		// The job's script is the last one: the history index's (wake.go)
		// goes ahead of it in the same pipeline. Its success, and its
		// queue's hash tag for the barrier, are what the WAIT is about.
		i := lastScript(cmds)
		if i < 0 {
			return next(ctx, cmds)
		}
		timeout := time.Second
		if dl, ok := ctx.Deadline(); ok {
			// Redis checks blocked clients' timeouts on its event loop
			// (up to 100 ms late at hz 10): leave room to read the answer.
			timeout = time.Until(dl) - waitMargin
		}
		ms := max(timeout.Milliseconds(), 1) // WAIT 0 would wait forever
		barrier := redis.NewStatusCmd(ctx, "set", barrierKey(cmds[i]), "1", "px", time.Minute.Milliseconds())
		wait := redis.NewIntCmd(ctx, "wait", h.n, ms)
		err := next(ctx, append(cmds[:len(cmds):len(cmds)], barrier, wait))
		if cmds[i].Err() == nil { // the job was written (or found): did the replicas get it?
			acked, werr := wait.Result()
			rw.record(int(acked), werr)
		}
		return err
	}
}

func isScript(cmd redis.Cmder) bool { return cmd.Name() == "evalsha" || cmd.Name() == "eval" }

// lastScript is the index of the last script in cmds, or -1.
func lastScript(cmds []redis.Cmder) int {
	for i := len(cmds) - 1; i >= 0; i-- {
		if isScript(cmds[i]) {
			return i
		}
	}
	return -1
}

// barrierKey is a key in the hash slot of the script's first key (asynq's
// keys carry the queue as hash tag: asynq:{queue}:…).
func barrierKey(cmd redis.Cmder) string {
	args := cmd.Args() // eval(sha) script numkeys key…
	if len(args) > 3 {
		if k, ok := args[3].(string); ok {
			if i := strings.IndexByte(k, '{'); i >= 0 {
				if j := strings.IndexByte(k[i:], '}'); j > 1 {
					return "escrowjobs:wait-barrier:" + k[i:i+j+1]
				}
			}
		}
	}
	return "escrowjobs:wait-barrier"
}

// installWaitHook adds waitHook to rc (or to every node of a Cluster).
func installWaitHook(rc redis.UniversalClient, n int) {
	switch c := rc.(type) {
	case *redis.Client:
		c.AddHook(waitHook{rc: c, n: n})
	case *redis.ClusterClient:
		c.OnNewNode(func(node *redis.Client) { node.AddHook(waitHook{rc: node, n: n}) })
	}
}

// notReplicated is the error of an Enqueue whose WAIT fell short.
func notReplicated(id string, want int, rw *replicaWait) error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.err != nil {
		var ne net.Error
		why := rw.err.Error()
		if errors.As(rw.err, &ne) && ne.Timeout() {
			why = "no answer to WAIT within the deadline"
		}
		return fmt.Errorf("enqueue %s: written to the master, but waiting for %d replica(s) failed (%s): %w", id, want, why, ErrNotReplicated)
	}
	if rw.acked < want {
		return fmt.Errorf("enqueue %s: written to the master, but %d of %d replica(s) acknowledged it in time: %w", id, max(rw.acked, 0), want, ErrNotReplicated)
	}
	return nil
}
