// Package peertest starts the real peers the tests talk to (redis-server,
// PostgreSQL, mailpit, stripe-mock) as private processes on free loopback
// ports, and stops them when the test ends.
//
// It is not a stable API: it exists for this project's tests and changes
// with them.
//
// A missing binary fails the test with the exact command that installs it;
// nothing here skips. The README's test command (scripts/test) installs all
// of them, so on a machine prepared by it every peer is present.
package peertest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is 127.0.0.1:port.
func Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// LookPath finds a binary on PATH or in $GOBIN / $GOPATH/bin (where the
// test command's `go install` puts the pinned peers). Missing, it fails the
// test with install, the command that fixes it.
func LookPath(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	t.Fatalf("%s not found on PATH or in the Go bin directory; install it with: %s (or run the README's test command, scripts/test, which installs every peer)", name, install)
	return ""
}
