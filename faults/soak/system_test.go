package soak_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/faults/soak"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Secrets the processes are given.
const (
	stripeKey   = "sk_test_soakNeverLogThisStripeKey0123456789"
	apiToken    = "soak-monitor-api-token-0123456789abcdef"
	mailFrom    = "ops@example.com"
	mailDomain  = "example.com"
	workerCount = 3
)

// Partners: one healthy, one that fails one request in four, one that the
// nemesis takes down.
const (
	partnerHealthy = "p-healthy"
	partnerFlaky   = "p-flaky"
	partnerDown    = "p-down"
)

var partnerIDs = []string{partnerHealthy, partnerFlaky, partnerDown}

// system is everything the soak runs, on loopback.
type system struct {
	t     *testing.T
	start time.Time
	dir   string

	links           *soak.Links
	master, replica *peertest.RedisServer
	masterLink      string // the proxy addresses the nodes are known by
	replicaLink     string
	sentinel        *peertest.Sentinel
	pg              *peertest.PostgresServer
	dbURL           string // through the PostgreSQL link
	mail            *peertest.Mailpit
	stripe          *escrowtest.Stripe
	partners        map[string]*escrowtest.Partner
	partnerIsDown   atomic.Bool
	registry        string
	serverBin       string
	opt             asynq.RedisConnOpt
	insp            *tasks.Inspector
	rc              redis.UniversalClient
	escrowURL       string
	monitorURL      string
	http            *http.Client
	workerEnv       []map[string]string
	mu              sync.Mutex
	workers         []*peertest.Process // the running process of each worker slot
	outputs         []func() string     // every process the soak ran
	timeline        []string            // what the nemesis did, when
	processes       []*peertest.Process // every worker process, for the log scan
}

// logf adds a line to the fault timeline.
func (s *system) logf(format string, args ...any) {
	line := fmt.Sprintf("%7.1fs ", time.Since(s.start).Seconds()) + fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.timeline = append(s.timeline, line)
	s.mu.Unlock()
	s.t.Log("nemesis: " + line)
}

func startSystem(t *testing.T) *system {
	t.Helper()
	s := &system{t: t, start: time.Now(), dir: t.TempDir(), links: soak.NewLinks(), http: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(s.links.Close)

	// Redis: master and replica, each known by the address of its link.
	mPort, rPort := peertest.FreePort(t), peertest.FreePort(t)
	s.masterLink, s.replicaLink = peertest.Addr(mPort), peertest.Addr(rPort)
	s.master = peertest.StartRedis(t, "--replica-announce-ip", "127.0.0.1", "--replica-announce-port", strconv.Itoa(mPort))
	if _, err := s.links.Add("redis-a", s.masterLink, s.master.Addr()); err != nil {
		t.Fatal(err)
	}
	s.replica = peertest.StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(mPort),
		"--replica-announce-ip", "127.0.0.1", "--replica-announce-port", strconv.Itoa(rPort))
	if _, err := s.links.Add("redis-b", s.replicaLink, s.replica.Addr()); err != nil {
		t.Fatal(err)
	}
	s.sentinel = peertest.StartSentinelAt(t, s.master, s.replica, s.masterLink, s.replicaLink, 3*time.Second)
	redisURL := s.sentinel.URL()

	// PostgreSQL behind its link: outbox, escrows, audit, dead letters.
	s.pg = peertest.StartPostgresServer(t)
	pgLink, err := s.links.Add("pg", "127.0.0.1:0", s.pg.Addr())
	if err != nil {
		t.Fatal(err)
	}
	s.dbURL = "postgres://postgres@" + pgLink + "/postgres?sslmode=disable"

	s.mail = peertest.StartMailpit(t, "--max", "0")
	s.stripe = escrowtest.StartStripe(t, escrowtest.StripeConfig{Secret: stripeKey})
	s.partners = map[string]*escrowtest.Partner{}
	reg := map[string]any{}
	for _, id := range partnerIDs {
		p := escrowtest.StartPartner(t)
		s.partners[id] = p
		reg[id] = map[string]any{"url": p.URL, "secret": p.Secret}
	}
	s.partners[partnerFlaky].Answer(func(n int) escrowtest.Answer {
		if n%4 == 1 {
			return escrowtest.Answer{Status: http.StatusServiceUnavailable}
		}
		return escrowtest.Answer{}
	})
	s.partners[partnerDown].Answer(func(int) escrowtest.Answer {
		if s.partnerIsDown.Load() {
			return escrowtest.Answer{Status: http.StatusServiceUnavailable}
		}
		return escrowtest.Answer{}
	})
	b, _ := json.Marshal(map[string]any{"partners": reg})
	s.registry = filepath.Join(s.dir, "partners.json")
	if err := os.WriteFile(s.registry, b, 0o600); err != nil {
		t.Fatal(err)
	}

	s.opt = escrowtest.RedisOpt(t, map[string]string{"REDIS_URL": redisURL})
	s.insp = tasks.NewInspector(s.opt)
	s.rc = s.opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { s.insp.Close(); s.rc.Close() })

	bins := peertest.Binaries(t, "./cmd/server", "./cmd/monitor", "./examples/escrow")
	s.serverBin = bins[0]
	monitorBin, escrowBin := bins[1], bins[2]

	common := map[string]string{
		"REDIS_URL":                      redisURL,
		"REDIS_WAIT_REPLICAS":            "1",
		"LOG_LEVEL":                      "info",
		"WORKER_CONCURRENCY":             "8",
		"WORKER_SHUTDOWN_TIMEOUT":        "3s",
		"METRICS_ADDR":                   "off",
		"DEAD_LETTER_DATABASE_URL":       s.dbURL,
		"AUDIT_DATABASE_URL":             s.dbURL,
		"SMTP_URL":                       s.mail.SMTPURL(),
		"MAIL_FROM":                      mailFrom,
		"STRIPE_SECRET_KEY":              stripeKey,
		"STRIPE_API_BASE":                s.stripe.URL,
		"WEBHOOK_ENDPOINTS_FILE":         s.registry,
		"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
		"WEBHOOK_BREAKER_PROBE":          "2s",
		"WEBHOOK_REDELIVERY_SCHEDULE":    "5s,10s,20s,30s,60s",
	}
	for i := range workerCount {
		env := map[string]string{"WORKER_DONE_MARKERS_PATH": filepath.Join(s.dir, fmt.Sprintf("done-w%d.jsonl", i)),
			// the spill file of failed ledger writes, never in the package directory
			"DEAD_LETTER_PATH": s.spillPath()}
		for k, v := range common {
			env[k] = v
		}
		if i < 2 { // two of the three relay the outbox
			env["OUTBOX_DATABASE_URL"] = s.dbURL
		}
		s.workerEnv = append(s.workerEnv, env)
	}
	s.workers = make([]*peertest.Process, workerCount)
	for i := range workerCount {
		if err := s.startWorker(i); err != nil {
			t.Fatal(err)
		}
	}

	monAddr := peertest.Addr(peertest.FreePort(t))
	mon := peertest.Start(t, monitorBin, envList(map[string]string{
		"REDIS_URL": redisURL, "REDIS_WAIT_REPLICAS": "1", "MONITOR_ADDR": monAddr, "MONITOR_LOOPBACK_NO_AUTH": "true",
		"JOB_PROCESSOR_SECRET_TOKEN": apiToken, "DEAD_LETTER_DATABASE_URL": s.dbURL, "LOG_LEVEL": "info",
		"DEAD_LETTER_PATH": s.spillPath(),
	}))
	s.monitorURL = "http://" + monAddr
	s.mu.Lock()
	s.outputs = append(s.outputs, mon.Output)
	s.mu.Unlock()
	escrowtest.Eventually(t, "the monitor answers /healthz", 30*time.Second, func() bool {
		resp, err := s.http.Get(s.monitorURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	escAddr := peertest.Addr(peertest.FreePort(t))
	esc := peertest.Start(t, escrowBin, envList(map[string]string{"DATABASE_URL": s.dbURL, "REDIS_URL": redisURL, "ESCROW_ADDR": escAddr}))
	if !esc.WaitOutput("escrow API listening on", 30*time.Second) {
		t.Fatalf("examples/escrow did not start:\n%s", esc.Output())
	}
	s.escrowURL = "http://" + escAddr
	s.mu.Lock()
	s.outputs = append(s.outputs, esc.Output)
	s.mu.Unlock()
	return s
}

func envList(m map[string]string) []string {
	var env []string
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	return env
}

// startWorker starts the process of worker slot i and waits until its
// worker runs. Like a supervisor (systemd's Restart=always), it starts the
// process again when it exits during start-up: a worker refuses to start
// while its PostgreSQL is down (its ledger is part of its configuration),
// and the nemesis may restart PostgreSQL at that moment.
func (s *system) startWorker(i int) error {
	deadline := time.Now().Add(90 * time.Second)
	for attempt := 1; ; attempt++ {
		p := peertest.Start(s.t, s.serverBin, envList(s.workerEnv[i]))
		s.mu.Lock()
		s.workers[i] = p
		s.outputs = append(s.outputs, p.Output)
		s.processes = append(s.processes, p)
		s.mu.Unlock()
		if p.WaitOutput(`"msg":"worker started"`, time.Until(deadline)) {
			return nil
		}
		if err, exited := p.Wait(100 * time.Millisecond); exited && time.Now().Before(deadline) {
			s.logf("worker w%d exited during start-up (%v): %s; starting it again", i, err, lastLine(p.Output()))
			time.Sleep(time.Second)
			continue
		}
		p.Kill()
		return fmt.Errorf("worker w%d did not start within 90 s (%d attempts); its output:\n%s", i, attempt, tail(p.Output(), 4000))
	}
}

// lastLine is the last non-empty line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return tail(lines[len(lines)-1], 300)
}

func (s *system) worker(i int) *peertest.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workers[i]
}

// workerOutputs is the output of every worker process the soak ran.
func (s *system) workerOutputs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.processes {
		out = append(out, p.Output())
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// masterNode is the node the sentinel reports as master, and the other.
func (s *system) masterNode() (master, other *peertest.RedisServer, masterLink, otherLink string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addr, err := s.sentinel.MasterAddr(ctx)
	if err != nil {
		return nil, nil, "", "", err
	}
	switch addr {
	case s.masterLink:
		return s.master, s.replica, s.masterLink, s.replicaLink, nil
	case s.replicaLink:
		return s.replica, s.master, s.replicaLink, s.masterLink, nil
	}
	return nil, nil, "", "", fmt.Errorf("sentinel reports master %s, which is neither link %s nor %s", addr, s.masterLink, s.replicaLink)
}

// replicaInSync reports whether the master has one replica online.
func (s *system) replicaInSync(masterAddr string) bool {
	c := redis.NewClient(&redis.Options{Addr: masterAddr, DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "replication").Result()
	return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
}

// requestsOf describes the requests partner got for webhook-id id: when
// (from the start of the run) and what it answered.
func (s *system) requestsOf(partner, id string) string {
	var parts []string
	for _, r := range s.partners[partner].Requests() {
		if r.ID == id {
			parts = append(parts, fmt.Sprintf("%.2fs %d", r.At.Sub(s.start).Seconds(), r.Status))
		}
	}
	return strings.Join(parts, ", ")
}
