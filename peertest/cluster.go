package peertest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisToolsInstall is the command that installs redis-server and redis-cli
// on Debian.
const RedisToolsInstall = "apt-get install -y redis-server redis-tools"

// Cluster is a private Redis Cluster of three masters (no replicas) on
// loopback, stopped at cleanup.
type Cluster struct {
	// Addrs are the masters' host:port, the value of REDIS_CLUSTER_ADDRS.
	Addrs []string
	nodes []*Process
}

// StartCluster starts three redis-server masters with cluster mode on free
// loopback ports (the cluster bus on other free ports, not port+10000), joins
// them with `redis-cli --cluster create`, waits until every node reports
// cluster_state:ok with all 16384 slots and three known nodes, and kills the
// processes at cleanup.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	server := LookPath(t, "redis-server", RedisToolsInstall)
	cli := LookPath(t, "redis-cli", RedisToolsInstall)
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		port, bus := FreePort(t), FreePort(t)
		dir := t.TempDir()
		p := Start(t, server, nil,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "2000",
			"--appendonly", "no", "--save", "", "--dir", dir, "--daemonize", "no", "--loglevel", "warning")
		c.nodes = append(c.nodes, p)
		c.Addrs = append(c.Addrs, Addr(port))
		if err := WaitRedis(Addr(port), 10*time.Second); err != nil {
			t.Fatalf("cluster node %d on %s: %v\n%s", i, Addr(port), err, p.Output())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create %s: %v\n%s", strings.Join(c.Addrs, " "), err, out)
	}
	if err := c.waitOK(30 * time.Second); err != nil {
		for i, n := range c.nodes {
			t.Logf("cluster node %d output:\n%s", i, n.Output())
		}
		t.Fatal(err)
	}
	return c
}

// Env is REDIS_CLUSTER_ADDRS's value: the masters' addresses, comma-separated.
func (c *Cluster) Env() string { return strings.Join(c.Addrs, ",") }

// Kill stops every node with SIGKILL.
func (c *Cluster) Kill() {
	for _, n := range c.nodes {
		n.Kill()
	}
}

// waitOK waits until every node has the whole slot map and knows the others.
func (c *Cluster) waitOK(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, addr := range c.Addrs {
		rc := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
		var info string
		var err error
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err = rc.ClusterInfo(ctx).Result()
			cancel()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_slots_ok:16384") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			if time.Now().After(deadline) {
				rc.Close()
				return fmt.Errorf("cluster node %s not ready within %s: %v\n%s", addr, timeout, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		rc.Close()
	}
	return nil
}
