package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/escrowjobs/escrowjobs/cmd/internal/cmdenv"
	"github.com/escrowjobs/escrowjobs/cmd/internal/ledgerenv"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/scheduler"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/escrowjobs/escrowjobs/worker"
	"github.com/hibiken/asynq"
)

// config is the worker process's configuration, from the environment.
type config struct {
	redis           asynq.RedisConnOpt
	clientOpts      []tasks.ClientOption // REDIS_WAIT_REPLICAS
	concurrency     int
	fetchLoops      int
	pollInterval    time.Duration
	fallbackPoll    time.Duration
	disableWake     bool
	shutdownTimeout time.Duration
	logLevel        string
	metricsAddr     string

	deadLetterPath      string
	doneMarkersPath     string
	deadLetterDB        string
	ledgerName          string // for the start log line: "postgres (host:port/db)" or "file /path"
	deadLetterRetention time.Duration

	smtpURL, mailFrom, resendKey, resendBase string
	stripeKey, stripeBase                    string
	webhookFile                              string
	webhookAllowPrivate                      bool
	webhookTimeout                           time.Duration
	webhookSchedule                          []time.Duration
	webhookBreakerFailures                   int
	webhookBreakerProbe                      time.Duration
	webhookReloadInterval                    time.Duration
	auditDB, auditPath                       string
	outboxDB                                 string

	scheduleFile         string
	alertURL, alertToken string
	watchdogInterval     time.Duration
}

// loadConfig reads the environment. Every error names its variable.
func loadConfig(getenv func(string) string) (config, error) {
	var c config
	var errs []error
	var err error
	if c.redis, err = tasks.RedisFromEnv(getenv); err != nil {
		errs = append(errs, err)
	}
	if c.clientOpts, err = tasks.ClientOptionsFromEnv(getenv); err != nil {
		errs = append(errs, err)
	}
	c.concurrency = cmdenv.Int(getenv, "WORKER_CONCURRENCY", worker.DefaultConcurrency, 1, 10000, &errs)
	c.fetchLoops = cmdenv.Int(getenv, "WORKER_FETCH_LOOPS", worker.DefaultFetchLoops, 1, 64, &errs)
	c.pollInterval = cmdenv.Duration(getenv, "WORKER_POLL_INTERVAL", worker.DefaultPollInterval, &errs)
	c.fallbackPoll = cmdenv.Duration(getenv, "WORKER_FALLBACK_POLL", worker.DefaultFallbackPoll, &errs)
	c.disableWake = cmdenv.Bool(getenv, "WORKER_DISABLE_WAKE", &errs)
	c.shutdownTimeout = cmdenv.Duration(getenv, "WORKER_SHUTDOWN_TIMEOUT", worker.DefaultShutdownTimeout, &errs)
	c.logLevel = strings.ToLower(getenv("LOG_LEVEL"))
	if c.metricsAddr, err = metricsAddr(getenv); err != nil {
		errs = append(errs, err)
	}

	if lc, err := ledgerenv.Load(getenv); err != nil {
		errs = append(errs, err)
	} else {
		c.deadLetterPath, c.deadLetterDB, c.deadLetterRetention = lc.Path, lc.DatabaseURL, lc.Retention
		c.ledgerName = lc.String()
	}
	// Completion markers of jobs that finished while Redis was down (see
	// worker.Config.DoneMarkersPath): next to the dead-letter file, "off"
	// keeps them in memory only.
	switch c.doneMarkersPath = strings.TrimSpace(getenv("WORKER_DONE_MARKERS_PATH")); c.doneMarkersPath {
	case "":
		c.doneMarkersPath = filepath.Join(filepath.Dir(c.deadLetterPath), "done-markers.jsonl")
	case "off":
		c.doneMarkersPath = ""
	}

	c.smtpURL, c.mailFrom = getenv("SMTP_URL"), getenv("MAIL_FROM")
	c.resendKey, c.resendBase = getenv("RESEND_API_KEY"), getenv("RESEND_API_BASE")
	switch {
	case c.smtpURL == "" && c.resendKey == "":
		errs = append(errs, errors.New("SMTP_URL or RESEND_API_KEY is required to send e-mail (run with -dev to log e-mails instead)"))
	case c.mailFrom == "":
		errs = append(errs, errors.New("MAIL_FROM is required (the sender address of customer e-mails)"))
	}
	if c.resendKey != "" {
		checkSecret("RESEND_API_KEY", c.resendKey, &errs)
	}
	c.stripeKey, c.stripeBase = getenv("STRIPE_SECRET_KEY"), getenv("STRIPE_API_BASE")
	if c.stripeKey == "" {
		errs = append(errs, errors.New("STRIPE_SECRET_KEY is required for stripe_capture_payment and stripe_refund_payment"))
	} else {
		checkSecret("STRIPE_SECRET_KEY", c.stripeKey, &errs)
	}
	c.webhookFile = getenv("WEBHOOK_ENDPOINTS_FILE")
	if c.webhookFile == "" {
		errs = append(errs, errors.New("WEBHOOK_ENDPOINTS_FILE is required (the partner registry: partnerId → url, secret)"))
	}
	c.webhookAllowPrivate = cmdenv.Bool(getenv, "WEBHOOK_ALLOW_PRIVATE_NETWORKS", &errs)
	c.webhookTimeout = cmdenv.Duration(getenv, "WEBHOOK_TIMEOUT", partner.DefaultTimeout, &errs)
	c.webhookSchedule = partner.DefaultRedeliverySchedule
	if v := getenv("WEBHOOK_REDELIVERY_SCHEDULE"); v != "" {
		if c.webhookSchedule, err = partner.ParseSchedule(v); err != nil {
			errs = append(errs, fmt.Errorf("WEBHOOK_REDELIVERY_SCHEDULE=%q: %w", v, err))
		}
	}
	c.webhookBreakerFailures = cmdenv.Int(getenv, "WEBHOOK_BREAKER_FAILURES", partner.DefaultBreakerFailures, 1, 1000000, &errs)
	c.webhookBreakerProbe = cmdenv.Duration(getenv, "WEBHOOK_BREAKER_PROBE", partner.DefaultBreakerProbe, &errs)
	c.webhookReloadInterval = cmdenv.Duration(getenv, "WEBHOOK_REGISTRY_POLL", partner.DefaultReloadInterval, &errs)
	c.auditDB = getenv("AUDIT_DATABASE_URL")
	c.auditPath = cmdenv.Or(getenv("AUDIT_LOG_PATH"), "audit.jsonl")
	c.outboxDB = getenv("OUTBOX_DATABASE_URL")

	c.scheduleFile = getenv("SCHEDULE_FILE")
	c.alertURL, c.alertToken = getenv("ALERT_WEBHOOK_URL"), getenv("ALERT_WEBHOOK_SECRET")
	c.watchdogInterval = cmdenv.Duration(getenv, "WATCHDOG_INTERVAL", scheduler.DefaultWatchdogInterval, &errs)
	if c.watchdogInterval < time.Second {
		errs = append(errs, fmt.Errorf("WATCHDOG_INTERVAL=%q: want at least 1s", getenv("WATCHDOG_INTERVAL")))
	}
	return c, errors.Join(errs...)
}

// MinSecretBytes is the shortest API key accepted (real Stripe and Resend
// keys are far longer; a shorter one is a placeholder or a typo).
const MinSecretBytes = 16

// checkSecret refuses a blank, padded or short secret. The error names
// the variable, never the value.
func checkSecret(name, v string, errs *[]error) {
	switch {
	case strings.TrimSpace(v) == "":
		*errs = append(*errs, fmt.Errorf("%s: is whitespace only", name))
	case strings.ContainsFunc(v, unicode.IsSpace):
		*errs = append(*errs, fmt.Errorf("%s: must not contain whitespace (a stray space or line break from copy and paste?)", name))
	case len(v) < MinSecretBytes:
		*errs = append(*errs, fmt.Errorf("%s: is %d bytes, want at least %d", name, len(v), MinSecretBytes))
	}
}
