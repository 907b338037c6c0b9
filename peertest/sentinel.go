package peertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMasterName is the name the sentinel monitors the master under.
const SentinelMasterName = "mymaster"

// Sentinel is a private Redis Sentinel setup on loopback: a master, one
// replica and one sentinel (quorum 1), stopped at cleanup.
type Sentinel struct {
	Master   *RedisServer
	Replica  *RedisServer
	sentinel *Process
	// Port is the sentinel's port.
	Port     int
	password string // the data nodes' requirepass, "" for none
	// monitor and replica are the addresses the sentinel knows the master
	// and the replica by ("" for their own); downAfterMS is its
	// down-after-milliseconds (0 for 3000: see StartLaggingSentinel).
	monitor, replica string
	downAfterMS      int
}

// StartSentinel starts a master, a replica of it and a sentinel that
// monitors the master (down after 3 s, failover timeout 5 s), and waits
// until the replica is in sync and the sentinel lists it. Both data nodes
// run with --appendonly no. Everything is killed at cleanup.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	return StartSentinelAuth(t, "")
}

// StartSentinelAuth is StartSentinel with password as the data nodes'
// requirepass (and the replica's and the sentinel's auth to the master);
// the sentinel itself needs none. "" is StartSentinel.
func StartSentinelAuth(t testing.TB, password string) *Sentinel {
	t.Helper()
	bin := LookPath(t, "redis-server", RedisToolsInstall)
	var auth []string
	if password != "" {
		auth = []string{"--requirepass", password, "--masterauth", password}
	}
	s := &Sentinel{Master: StartRedis(t, auth...), password: password}
	s.Replica = StartRedis(t, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port)}, auth...)...)

	s.start(t, bin, 5000)
	return s
}

// StartSentinelAt starts a sentinel (quorum 1, failover timeout 5 s, down
// after downAfter) for a master and a replica that are reached at other
// addresses than their own, e.g. through proxies: it monitors the master at
// masterAddr and waits until it lists the replica, healthy, at replicaAddr
// (the replica must announce it with --replica-announce-port and
// replicate from masterAddr). The data nodes are the caller's; the sentinel
// is killed at cleanup.
func StartSentinelAt(t testing.TB, master, replica *RedisServer, masterAddr, replicaAddr string, downAfter time.Duration) *Sentinel {
	t.Helper()
	bin := LookPath(t, "redis-server", RedisToolsInstall)
	s := &Sentinel{Master: master, Replica: replica, monitor: masterAddr, replica: replicaAddr, downAfterMS: int(downAfter / time.Millisecond)}
	s.start(t, bin, 5000)
	return s
}

// start writes the sentinel's configuration (failover timeout in ms) and
// runs it until it monitors s.Master and sees s.Replica.
func (s *Sentinel) start(t testing.TB, bin string, failoverTimeoutMS int) {
	t.Helper()
	s.Port = FreePort(t)
	dir := t.TempDir()
	monitor, replica, downAfter := s.Master.Addr(), s.Replica.Addr(), 3000
	if s.monitor != "" {
		monitor, replica = s.monitor, s.replica
	}
	if s.downAfterMS > 0 {
		downAfter = s.downAfterMS
	}
	_, monitorPort, _ := net.SplitHostPort(monitor)
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
dir %s
loglevel notice
sentinel resolve-hostnames no
sentinel monitor %s 127.0.0.1 %s 1
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
`, s.Port, dir, SentinelMasterName, monitorPort, SentinelMasterName, downAfter, SentinelMasterName, failoverTimeoutMS)
	if s.password != "" {
		body += fmt.Sprintf("sentinel auth-pass %s %s\n", SentinelMasterName, s.password)
	}
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatalf("write sentinel config: %v", err)
	}
	s.sentinel = Start(t, bin, nil, conf, "--sentinel")
	if err := WaitRedis(s.Addr(), 10*time.Second); err != nil {
		t.Fatalf("sentinel on %s: %v\n%s", s.Addr(), err, s.sentinel.Output())
	}
	if err := s.waitReplica(replica, 20*time.Second); err != nil {
		t.Fatalf("%v\nsentinel output:\n%s", err, s.sentinel.Output())
	}
}

// Addr is the sentinel's host:port.
func (s *Sentinel) Addr() string { return Addr(s.Port) }

// URL is the REDIS_URL that reaches the master through the sentinel.
func (s *Sentinel) URL() string {
	return "redis-sentinel://" + s.Addr() + "?master=" + SentinelMasterName
}

// Output is what the sentinel logged so far.
func (s *Sentinel) Output() string { return s.sentinel.Output() }

// Client is a go-redis client for the sentinel itself. Close it.
func (s *Sentinel) Client() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), DialTimeout: time.Second})
}

// MasterAddr is the master's host:port as the sentinel reports it now.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	sc := s.Client()
	defer sc.Close()
	hp, err := sc.GetMasterAddrByName(ctx, SentinelMasterName).Result()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel: get-master-addr-by-name: got %v", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// WaitMaster waits until the sentinel reports want as the master.
func (s *Sentinel) WaitMaster(want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var got string
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		got, err = s.MasterAddr(ctx)
		cancel()
		if err == nil && got == want {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("sentinel: master is %q (err %v), want %q within %s", got, err, want, timeout)
}

// waitReplica waits until the sentinel lists addr as a healthy replica of
// the master with its replication link up.
func (s *Sentinel) waitReplica(addr string, timeout time.Duration) error {
	sc := s.Client()
	defer sc.Close()
	deadline := time.Now().Add(timeout)
	var last []map[string]string
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		last, err = sc.Replicas(ctx, SentinelMasterName).Result()
		cancel()
		for _, r := range last {
			if net.JoinHostPort(r["ip"], r["port"]) == addr && r["flags"] == "slave" && r["master-link-status"] == "ok" {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("sentinel: replica %s not listed as healthy within %s (err %v): %v", addr, timeout, err, last)
}

// WaitRole waits until the Redis at addr reports role in INFO replication
// ("master" or "slave").
func WaitRole(addr, role string, timeout time.Duration) error {
	rc := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	defer rc.Close()
	deadline := time.Now().Add(timeout)
	var info string
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err = rc.Info(ctx, "replication").Result()
		cancel()
		if err == nil && infoField(info, "role") == role {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("redis %s: role is not %s within %s (err %v):\n%s", addr, role, timeout, err, info)
}

// infoField is one field of an INFO reply ("" when absent).
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), name+":"); ok {
			return v
		}
	}
	return ""
}
