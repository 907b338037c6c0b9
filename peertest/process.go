package peertest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var builds sync.Map // package path → *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// Binary builds the main package pkg (e.g. "./cmd/server", relative to the
// module root) once per test process and returns the binary's path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "escrowjobs-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		// Without -race: child processes are black boxes here, and the
		// race detector would slow the crash and load scenarios tenfold.
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Dir = moduleRoot()
		b.out, b.err = cmd.CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, b.err, b.out)
	}
	return b.path
}

// Binaries builds the main packages pkgs (as for Binary) in one go build,
// which compiles them in parallel, and returns their paths in order. A
// package Binary or Binaries built before in this test process is not
// built again.
func Binaries(t testing.TB, pkgs ...string) []string {
	t.Helper()
	var todo []string
	var results []*buildResult
	for _, pkg := range pkgs {
		v, _ := builds.LoadOrStore(pkg, &buildResult{})
		results = append(results, v.(*buildResult))
		todo = append(todo, pkg)
	}
	dir, err := os.MkdirTemp("", "escrowjobs-bin-")
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var out []byte
	for i, b := range results {
		b.once.Do(func() {
			once.Do(func() {
				cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, todo...)...)
				cmd.Dir = moduleRoot()
				out, err = cmd.CombinedOutput()
			})
			b.path, b.err, b.out = filepath.Join(dir, filepath.Base(todo[i])), err, out
		})
	}
	paths := make([]string, len(results))
	for i, b := range results {
		if b.err != nil {
			t.Fatalf("go build %s: %v\n%s", pkgs[i], b.err, b.out)
		}
		paths[i] = b.path
	}
	return paths
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// Process is a child process whose output is captured.
type Process struct {
	t   testing.TB
	cmd *exec.Cmd
	out *Buffer
	// Exited is closed when the process has exited.
	Exited chan struct{}
	err    error
}

// Buffer is a bytes.Buffer that goroutines (a server's loggers, a child
// process's output) may write to while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start runs bin with args and exactly env (plus PATH and HOME), capturing
// stdout and stderr together. It is killed at cleanup if still running.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{t: t, out: &Buffer{}, Exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.Exited) }()
	t.Cleanup(func() { p.Kill() })
	return p
}

// terminate sends sig to cmd's process and waits until done is closed (the
// process has exited); after grace it kills the process and waits.
func terminate(cmd *exec.Cmd, done <-chan struct{}, sig os.Signal, grace time.Duration) {
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Output is everything the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Signal sends sig.
func (p *Process) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	select {
	case <-p.Exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.Exited
}

// Wait waits up to timeout for the exit and returns its error.
func (p *Process) Wait(timeout time.Duration) (error, bool) {
	select {
	case <-p.Exited:
		return p.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// WaitOutput waits until the output contains s.
func (p *Process) WaitOutput(s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Output(), s) {
			return true
		}
		select {
		case <-p.Exited:
			return strings.Contains(p.Output(), s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}
