package peertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresInstall is the command that installs PostgreSQL on Debian.
const PostgresInstall = "apt-get install -y postgresql"

// Postgres returns the URL of a fresh, empty database for this test alone,
// dropped when the test ends.
//
// With TEST_DATABASE_URL set, the database is created on that server (the
// URL's user needs CREATEDB). Otherwise the first call starts one private
// PostgreSQL cluster for the whole test process (initdb into a temp dir,
// postgres on a free loopback port with fsync off; run as the "postgres"
// OS user when the test runs as root, since PostgreSQL refuses root), and
// every call creates its own database in it. A system PostgreSQL on :5432
// is never used unless TEST_DATABASE_URL names it.
//
// A package that calls Postgres must run its tests through [RunMain], which
// stops the cluster and removes its directory when the tests are done:
//
//	func TestMain(m *testing.M) { os.Exit(peertest.RunMain(m)) }
func Postgres(t testing.TB) string {
	t.Helper()
	if !runMainActive.Load() {
		t.Fatalf("peertest.Postgres needs peertest.RunMain: add func TestMain(m *testing.M) { os.Exit(peertest.RunMain(m)) } to the package's tests")
	}
	admin := os.Getenv("TEST_DATABASE_URL")
	if admin == "" {
		c, err := sharedCluster()
		if err != nil {
			t.Fatalf("private PostgreSQL: %v", err)
		}
		admin = c.url("postgres")
	}
	return createDatabase(t, admin)
}

// RunMain runs the tests, then stops the private PostgreSQL cluster if a
// test started one and removes its directory. It returns m.Run's exit code.
func RunMain(m *testing.M) int {
	runMainActive.Store(true)
	code := m.Run()
	clusterMu.Lock()
	c := cluster
	cluster, clusterErr, clusterStarted = nil, nil, true // no start after this
	clusterMu.Unlock()
	if c != nil {
		c.stop()
	}
	return code
}

// The private cluster: started at most once per test process, stopped by
// RunMain. It is process-wide state by design.
var (
	runMainActive  atomic.Bool
	clusterMu      sync.Mutex
	clusterStarted bool
	cluster        *pgCluster
	clusterErr     error
)

// sharedCluster starts the process's cluster on first use and returns it, or
// the error the first start failed with.
func sharedCluster() (*pgCluster, error) {
	clusterMu.Lock()
	defer clusterMu.Unlock()
	if !clusterStarted {
		clusterStarted = true
		cluster, clusterErr = startCluster()
	}
	if cluster == nil && clusterErr == nil {
		return nil, errors.New("the cluster was already stopped by RunMain")
	}
	return cluster, clusterErr
}

// pgCluster is a private PostgreSQL server process.
type pgCluster struct {
	dir  string // removed by stop
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// url is the URL of database db as the superuser "postgres" over TCP.
func (c *pgCluster) url(db string) string {
	return "postgres://postgres@" + Addr(c.port) + "/" + db + "?sslmode=disable"
}

// stop shuts the server down (fast shutdown, then SIGKILL after 10 s) and
// removes its directory.
func (c *pgCluster) stop() {
	terminate(c.cmd, c.done, syscall.SIGINT, 10*time.Second)
	_ = os.RemoveAll(c.dir)
}

// startCluster runs initdb and starts postgres (with extra arguments),
// retrying on another port if the first one was taken in the meantime.
func startCluster(extra ...string) (*pgCluster, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	sweepStale()
	dir, err := os.MkdirTemp("", clusterDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("make cluster directory: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(dir)
		}
	}()
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, fmt.Errorf("make socket directory: %w", err)
	}
	if cred != nil {
		for _, p := range []string{dir, sock} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("hand %s to the postgres user: %w", p, err)
			}
		}
	}

	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.Env = pgEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb %s: %w\n%s", data, err, out)
	}

	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c, err := startPostgres(bin, dir, data, sock, port, cred, extra...)
		if err == nil {
			ok = true
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// clusterDirPrefix names the temp directories of private clusters.
const clusterDirPrefix = "escrowjobs-pg-"

// sweepStale removes cluster directories left by test processes that were
// killed before RunMain could clean up (their server died with them):
// those older than two hours whose server is not running.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), clusterDirPrefix+"*"))
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() || time.Since(st.ModTime()) < 2*time.Hour {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 0 {
				if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
					continue
				}
			}
		}
		_ = os.RemoveAll(d)
	}
}

// startPostgres starts the server and waits until it accepts connections.
// extra are more command-line arguments (a later -c overrides an earlier).
func startPostgres(bin, dir, data, sock string, port int, cred *syscall.Credential, extra ...string) (*pgCluster, error) {
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open server log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", sock, "-p", strconv.Itoa(port), "-h", "127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "logging_collector=off")
	cmd.Args = append(cmd.Args, extra...)
	cmd.Dir = dir
	cmd.Env = pgEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: a test binary that dies without RunMain (panic, timeout,
	// SIGKILL) takes its server down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &pgCluster{dir: dir, port: port, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-c.done:
			return nil, fmt.Errorf("postgres on %s exited during start-up; its log:\n%s", Addr(port), readTail(logPath))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.url("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-c.done
			return nil, fmt.Errorf("postgres on %s not ready after 60s: %v; its log:\n%s", Addr(port), err, readTail(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// postgresBinDir finds the directory holding both initdb and postgres: from
// PATH (following symlinks, so both come from the same version), else the
// newest /usr/lib/postgresql/*/bin.
func postgresBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return pgVersion(b) - pgVersion(a) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("initdb and postgres not found on PATH or in /usr/lib/postgresql/*/bin; install them with: %s (or run the README's test command, scripts/test, which installs every peer), or set TEST_DATABASE_URL to a server the tests may create databases on", PostgresInstall)
}

// pgVersion is the major version in /usr/lib/postgresql/<v>/bin, 0 if none.
func pgVersion(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// postgresCredential is nil when the test does not run as root, else the
// credential of the "postgres" OS user, which initdb and postgres run as.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses root; there is no postgres OS user to run it as (%w); install PostgreSQL with: %s", err, PostgresInstall)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres OS user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// pgEnv is the environment for initdb and postgres: this process's, minus
// the libpq/server variables that would redirect them, in the C locale.
func pgEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "LANG=C")
}

// freePort is FreePort without a testing.TB (the cluster outlives any test).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readTail returns the last 4 KiB of the file at path.
func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return string(b)
}

// createDatabase creates a database named after the test on the server of
// adminURL, drops it at cleanup, and returns its URL.
func createDatabase(t testing.TB, adminURL string) string {
	t.Helper()
	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect to the admin database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("drop database %s: connect: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := withDatabase(adminURL, name)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	return u
}

// databaseName turns a test name into a unique PostgreSQL identifier:
// t_<lower-case letters, digits and _, at most 40>_<8 random hex digits>.
func databaseName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() == 40 {
			break
		}
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return "t_" + b.String() + "_" + hex.EncodeToString(rnd[:])
}

// withDatabase returns adminURL pointing at database db instead: the path of
// a postgres:// URL, or dbname= appended to a key=value DSN.
func withDatabase(adminURL, db string) (string, error) {
	if strings.HasPrefix(adminURL, "postgres://") || strings.HasPrefix(adminURL, "postgresql://") {
		u, err := url.Parse(adminURL)
		if err != nil {
			return "", errors.New("not a valid URL")
		}
		u.Path = "/" + db
		u.RawPath = ""
		q := u.Query()
		if q.Has("dbname") {
			q.Set("dbname", db)
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	return adminURL + " dbname=" + db, nil
}
