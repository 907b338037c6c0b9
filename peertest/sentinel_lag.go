package peertest

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// LaggingSentinel is a Sentinel setup (master, one replica, one sentinel
// with quorum 1, down after 3 s) whose replica receives the master's
// replication stream through a proxy that can delay it, as a slow or
// congested network between two hosts does. KillMaster SIGKILLs the master
// and drops whatever the proxy still holds, as when the master's host dies
// with replication data not yet delivered: the replica is then promoted
// without the master's last writes, which is how an unplanned failover
// loses acknowledged data under asynchronous replication.
type LaggingSentinel struct {
	*Sentinel
	proxy *lagProxy
}

// StartLaggingSentinel starts the setup with no lag, waits until the
// replica is in sync and listed by the sentinel, and stops everything at
// cleanup. The sentinel's failover timeout is 3 minutes: a sentinel
// "fixes" a replica that replicates from another address than the master's
// (here the proxy) after that long, which would bypass the proxy; the
// promotion itself does not wait for it. The sentinel's down-after is 3 s
// (it was 1 s): a sentinel gives a master it has just promoted
// that long to answer the first PING on a new link, and on a loaded
// two-core machine running the -race suite 1 s was missed once (CI,
// 2026-12-08): the sentinel failed over a second time, to the old master
// just restarted empty, and the promoted replica resynced from it.
func StartLaggingSentinel(t testing.TB) *LaggingSentinel {
	t.Helper()
	bin := LookPath(t, "redis-server", RedisToolsInstall)
	s := &Sentinel{Master: StartRedis(t)}
	p := startLagProxy(t, s.Master.Addr())
	s.Replica = StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(p.port))

	s.start(t, bin, 180000)
	return &LaggingSentinel{Sentinel: s, proxy: p}
}

// SetLag delays every byte the master sends the replica by d from now on.
func (s *LaggingSentinel) SetLag(d time.Duration) { s.proxy.lag.Store(int64(d)) }

// KillMaster SIGKILLs the master; replication data the proxy still holds
// is dropped, never delivered.
func (s *LaggingSentinel) KillMaster() {
	s.proxy.dropAll()
	s.Master.Kill()
}

// ReplicaLinkPort is the port the replica replicates from now: the
// proxy's while the lag applies.
func (s *LaggingSentinel) ReplicaLinkPort() (proxy, now int, err error) {
	rc := redis.NewClient(&redis.Options{Addr: s.Replica.Addr(), DialTimeout: time.Second})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := rc.Info(ctx, "replication").Result()
	if err != nil {
		return s.proxy.port, 0, err
	}
	now, _ = strconv.Atoi(infoField(info, "master_port"))
	return s.proxy.port, now, nil
}

// Dropped is how many bytes of replication data KillMaster dropped.
func (s *LaggingSentinel) Dropped() int64 { return s.proxy.dropped.Load() }

// lagProxy forwards the replica's connections to the master: replica to
// master at once, master to replica after the lag.
type lagProxy struct {
	port    int
	ln      net.Listener
	master  string
	lag     atomic.Int64 // nanoseconds
	dropped atomic.Int64 // bytes never delivered

	mu    sync.Mutex
	dead  chan struct{} // closed by dropAll
	conns []net.Conn
}

func startLagProxy(t testing.TB, master string) *lagProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("lag proxy: %v", err)
	}
	p := &lagProxy{port: ln.Addr().(*net.TCPAddr).Port, ln: ln, master: master, dead: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.dropAll() })
	return p
}

func (p *lagProxy) serve() {
	for {
		replica, err := p.ln.Accept()
		if err != nil {
			return
		}
		select {
		case <-p.dead: // the master is gone: refuse, as its host would
			replica.Close()
			continue
		default:
		}
		master, err := net.DialTimeout("tcp", p.master, time.Second)
		if err != nil {
			replica.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, replica, master)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(master, replica); master.Close() }()
		go p.pump(master, replica)
	}
}

type chunk struct {
	b  []byte
	at time.Time // when to deliver it
}

// pump delivers what master sends to replica, each chunk lag later.
func (p *lagProxy) pump(master, replica net.Conn) {
	queue := make(chan chunk, 1<<16)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 32<<10)
			n, err := master.Read(buf)
			if n > 0 {
				queue <- chunk{b: buf[:n], at: time.Now().Add(time.Duration(p.lag.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	defer replica.Close()
	for c := range queue {
		timer := time.NewTimer(time.Until(c.at))
		select {
		case <-p.dead:
			timer.Stop()
			p.dropped.Add(int64(len(c.b)))
			for rest := range queue {
				p.dropped.Add(int64(len(rest.b)))
			}
			return
		case <-timer.C:
		}
		if _, err := replica.Write(c.b); err != nil {
			return
		}
	}
}

// dropAll stops delivering and closes every connection.
func (p *lagProxy) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.dead:
	default:
		close(p.dead)
	}
	for _, c := range p.conns {
		c.Close()
	}
}
