package peertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisInstall is the command that installs redis-server on Debian.
const RedisInstall = "apt-get install -y redis-server"

// RedisServer is a private redis-server process on loopback.
type RedisServer struct {
	t    testing.TB
	bin  string
	Port int
	Dir  string
	args []string
	cmd  *exec.Cmd
}

// Redis returns the URL of a Redis for this test alone: TEST_REDIS_URL
// (flushed first) when set, else a private redis-server stopped at cleanup.
func Redis(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatalf("TEST_REDIS_URL: %v", err)
		}
		c := redis.NewClient(opt)
		defer c.Close()
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("flush TEST_REDIS_URL: %v", err)
		}
		return u
	}
	return StartRedis(t).URL()
}

// RedisClient is a client of the Redis at url (redis://…), closed at
// cleanup.
func RedisClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis URL %s: %v", url, err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// StartRedis starts a private redis-server. extra are more config
// arguments, e.g. "--appendonly", "yes". Its data directory is a temp dir,
// kept across Kill and Start so a restart with appendonly keeps the data.
func StartRedis(t testing.TB, extra ...string) *RedisServer {
	t.Helper()
	s := &RedisServer{
		t:    t,
		bin:  LookPath(t, "redis-server", RedisInstall),
		Port: FreePort(t),
		Dir:  t.TempDir(),
		args: extra,
	}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Addr is host:port.
func (s *RedisServer) Addr() string { return Addr(s.Port) }

// URL is redis://host:port/0.
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// Start starts the server (again) on the same port and directory and waits
// until it answers PING.
func (s *RedisServer) Start() {
	s.t.Helper()
	args := append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.Dir, "--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning",
	}, s.args...)
	s.cmd = exec.Command(s.bin, args...)
	out := &Buffer{} // shown only when it does not come up
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	if err := WaitRedis(s.Addr(), 10*time.Second); err != nil {
		s.Kill()
		s.t.Fatalf("redis-server on %s: %v\n%s", s.Addr(), err, out.String())
	}
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (s *RedisServer) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Signal sends sig to the running server (SIGSTOP pauses it, SIGCONT
// resumes it); it does nothing when the server is not running.
func (s *RedisServer) Signal(sig os.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
}

// WaitRedis waits until addr answers PING.
func WaitRedis(addr string, timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err = c.Ping(ctx).Err()
		cancel()
		if err == nil || strings.HasPrefix(err.Error(), "NOAUTH") {
			return nil // NOAUTH: up, and wants a password (--requirepass)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PING answer within %s: %w", timeout, err)
}
