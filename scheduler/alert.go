package scheduler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/escrowjobs/escrowjobs/webhook"
)

// AlertType is the type field of every Alert.
const AlertType = "escrowjobs.dead_letters"

// AlertTimeout bounds one alert POST.
const AlertTimeout = 5 * time.Second

// Alert is the JSON body posted to AlertURL.
type Alert struct {
	Type     string `json:"type"`
	Queue    string `json:"queue"`
	Archived int    `json:"archived"`
	// Previous is the archived count at the previous check, null at the
	// process's first check.
	Previous  *int      `json:"previous"`
	Threshold int       `json:"threshold"`
	At        time.Time `json:"at"`
}

// alerter posts signed alerts.
type alerter struct {
	url    string
	host   string
	signer *webhook.Signer
	client *http.Client
}

func newAlerter(rawURL, secret string, client *http.Client) (*alerter, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("AlertURL (ALERT_WEBHOOK_URL): want an http:// or https:// URL")
	}
	if secret == "" {
		return nil, errors.New("AlertSecret (ALERT_WEBHOOK_SECRET) is required with AlertURL: alerts are signed")
	}
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		return nil, fmt.Errorf("AlertSecret (ALERT_WEBHOOK_SECRET): %w", err)
	}
	if client == nil {
		client = &http.Client{Timeout: AlertTimeout}
	}
	return &alerter{url: rawURL, host: u.Host, signer: signer, client: client}, nil
}

var safeQueue = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// alertID is the webhook-id of the alert of queue for period: the same in
// every process, so a receiver can drop a double.
func alertID(queue string, period time.Time) string {
	q := queue
	if !safeQueue.MatchString(q) {
		sum := sha256.Sum256([]byte(queue))
		q = hex.EncodeToString(sum[:8])
	}
	return "dl-" + q + "-" + strconv.FormatInt(period.Unix(), 10)
}

// post sends a to the alert URL. Failures are logged, never returned.
func (al *alerter) post(ctx context.Context, log *slog.Logger, a Alert, id string, now func() time.Time) {
	attrs := []any{"queue", a.Queue, "alert_host", al.host, "webhook_id", id}
	body, err := json.Marshal(a)
	if err != nil {
		log.Error("dead-letter alert not sent: encode", append(attrs, "error", err)...)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, AlertTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, al.url, bytes.NewReader(body))
	if err != nil {
		log.Error("dead-letter alert not sent: request", append(attrs, "error", err)...)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "escrowjobs-watchdog")
	if err := al.signer.Sign(req.Header, id, now(), body); err != nil {
		log.Error("dead-letter alert not sent: sign", append(attrs, "error", err)...)
		return
	}
	resp, err := al.client.Do(req)
	if err != nil {
		// *url.Error quotes the URL, which may hold a token: log the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		log.Error("dead-letter alert not delivered", append(attrs, "error", err)...)
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		log.Error("dead-letter alert refused", append(attrs, "status", resp.StatusCode)...)
		return
	}
	log.Info("dead-letter alert delivered", append(attrs, "status", resp.StatusCode)...)
}
