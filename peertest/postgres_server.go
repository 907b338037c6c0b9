package peertest

import (
	"fmt"

	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PostgresServer is a private PostgreSQL server for one test that restarts
// it (a fault test): unlike the shared cluster of Postgres, it belongs to
// the test alone, keeps its port and data across Restart, and is stopped
// and removed at cleanup.
type PostgresServer struct {
	t testing.TB

	mu sync.Mutex
	c  *pgCluster
	// what startPostgres needs again at each restart
	bin, data, sock string
	cred            *syscall.Credential
}

// durable are the settings of a PostgresServer: unlike the shared
// cluster's, a commit is on disk before it is acknowledged, so a crash
// (Restart("immediate")) loses no committed transaction, as on a
// production server.
var durable = []string{"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on"}

// StartPostgresServer runs initdb and starts the server with fsync and
// synchronous commits on. A missing PostgreSQL fails the test naming
// PostgresInstall.
func StartPostgresServer(t testing.TB) *PostgresServer {
	t.Helper()
	c, err := startCluster(durable...)
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
	}
	bin, err := postgresBinDir()
	if err != nil {
		c.stop()
		t.Fatal(err)
	}
	cred, err := postgresCredential()
	if err != nil {
		c.stop()
		t.Fatal(err)
	}
	s := &PostgresServer{t: t, c: c, bin: bin, data: filepath.Join(c.dir, "data"), sock: filepath.Join(c.dir, "sock"), cred: cred}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.c.stop()
	})
	return s
}

// Addr is the server's host:port (the same across restarts).
func (s *PostgresServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Addr(s.c.port)
}

// URL is the URL of database db as the superuser "postgres".
func (s *PostgresServer) URL(db string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c.url(db)
}

// Restart stops the server with mode ("fast": SIGINT, rolling back open
// transactions; "immediate": SIGQUIT, a crash that recovers from the WAL on
// start) and starts it again on the same port and data directory, waiting
// until it accepts connections.
func (s *PostgresServer) Restart(mode string) error {
	sig := syscall.SIGINT
	if mode == "immediate" {
		sig = syscall.SIGQUIT
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	terminate(s.c.cmd, s.c.done, sig, 10*time.Second)
	var err error
	for range 50 { // the port can take a moment to be free again
		var c *pgCluster
		if c, err = startPostgres(s.bin, s.c.dir, s.data, s.sock, s.c.port, s.cred, durable...); err == nil {
			s.c = c
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("restart postgres on %s: %w", Addr(s.c.port), err)
}
