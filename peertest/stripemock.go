package peertest

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// StripeMockInstall is the command that installs the pinned stripe-mock.
const StripeMockInstall = "go install github.com/stripe/stripe-mock@v0.203.0"

// StripeMockKey is a test-mode secret key stripe-mock accepts.
const StripeMockKey = "sk_test_123"

// StartStripeMock starts stripe-mock with HTTP and HTTPS on free loopback
// ports, waits until it answers and stops it at cleanup. It returns the
// HTTP base URL (http://127.0.0.1:port, without /v1) for STRIPE_API_BASE.
//
// stripe-mock answers from fixtures: it keeps no state, ignores
// Idempotency-Key, and its PaymentIntent is in status
// requires_payment_method whatever was done to it.
func StartStripeMock(t testing.TB) string {
	t.Helper()
	bin := LookPath(t, "stripe-mock", StripeMockInstall)
	httpPort, httpsPort := FreePort(t), FreePort(t)
	for httpsPort == httpPort {
		httpsPort = FreePort(t)
	}
	p := Start(t, bin, nil, "-http-addr", Addr(httpPort), "-https-addr", Addr(httpsPort))
	base := "http://" + Addr(httpPort)
	if err := waitStripeMock(p, base, 15*time.Second); err != nil {
		t.Fatalf("stripe-mock (http %s, https %s): %v; its output:\n%s", Addr(httpPort), Addr(httpsPort), err, p.Output())
	}
	return base
}

// waitStripeMock waits until stripe-mock lists refunds at base.
func waitStripeMock(p *Process, base string, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-p.Exited:
			return fmt.Errorf("exited early: %v", p.err)
		default:
		}
		if err = stripeMockReady(hc, base); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %s: %w", timeout, err)
}

func stripeMockReady(hc *http.Client, base string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/refunds?limit=1", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+StripeMockKey)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/refunds answered %s", resp.Status)
	}
	return nil
}
