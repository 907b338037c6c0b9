package partner_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/webhook"
)

// Load the partner registry and deliver one webhook. In production the
// file is WEBHOOK_ENDPOINTS_FILE, URLs are https and private networks are
// refused; this example posts to a loopback receiver in test mode.
func ExampleNewSender() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Println("partner verify:", webhook.Verify(secret, r.Header, body, time.Minute))
	}))
	defer endpoint.Close()

	dir, err := os.MkdirTemp("", "webhook-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "endpoints.json")
	registry := `{"partners": {"acme": {"url": "` + endpoint.URL + `/hooks", "secret": "` + secret + `"}}}`
	if err := os.WriteFile(path, []byte(registry), 0o600); err != nil {
		fmt.Println(err)
		return
	}

	reg, err := partner.LoadRegistry(path, true) // allowHTTP: test mode only
	if err != nil {
		fmt.Println(err)
		return
	}
	sender := partner.NewSender(reg, partner.SenderOptions{AllowPrivateNetworks: true})
	err = sender.Send(context.Background(), partner.Delivery{
		ID:        "evt_1",
		PartnerID: "acme",
		Body:      []byte(`{"type":"escrow.status_changed"}`),
	})
	fmt.Println("send:", err)
	// Output:
	// partner verify: <nil>
	// send: <nil>
}

func ExampleParseSchedule() {
	steps, err := partner.ParseSchedule("5m,30m,2h")
	if err != nil {
		panic(err)
	}
	fmt.Println(steps)
	// Output: [5m0s 30m0s 2h0m0s]
}

// A Watcher keeps the partner registry live: an edited file is picked up
// by Reload (called on SIGHUP, and by Run every poll interval).
func ExampleNewWatcher() {
	path := filepath.Join(os.TempDir(), "escrowjobs-example-partners.json")
	defer os.Remove(path)
	write := func(partners string) {
		if err := os.WriteFile(path, []byte(`{"partners": {`+partners+`}}`), 0o600); err != nil {
			panic(err)
		}
	}
	write(`"acme": {"url": "https://hooks.acme.example/escrow", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`)
	w, err := partner.NewWatcher(path, false, nil)
	if err != nil {
		panic(err)
	}
	w.OnChange(func(r *partner.Registry) { fmt.Println("now serving", r.Partners()) })

	write(`"acme": {"url": "https://hooks.acme.example/escrow", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
	       "globex": {"url": "https://globex.example/wh", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "maxConcurrency": 2, "ratePerSecond": 5}`)
	if _, err := w.Reload(); err != nil {
		panic(err)
	}
	limits, _ := w.Registry().Limits("globex")
	fmt.Printf("globex: %d at once, %g per second\n", limits.MaxConcurrency, limits.RatePerSecond)
	// Output:
	// now serving [acme globex]
	// globex: 2 at once, 5 per second
}
