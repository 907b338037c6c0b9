package payments_test

import (
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/payments"
)

// TestStripeBaseNeedsHTTPSOffLoopback: STRIPE_API_BASE carries the secret
// key, so plain http is for a loopback test peer (stripe-mock) only.
func TestStripeBaseNeedsHTTPSOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		base string
		ok   bool
	}{
		{"https://api.stripe.com", true},
		{"https://stripe.internal.example:8443", true},
		{"http://127.0.0.1:12111", true},
		{"http://127.0.0.2:12111", true},
		{"http://[::1]:12111", true},
		{"http://localhost:12111", true},
		{"http://api.stripe.com", false},
		{"http://192.168.1.10:12111", false},
		{"http://localhost.evil.example", false},
		{"http://0.0.0.0:12111", false},
	} {
		_, err := payments.NewStripe(payments.StripeConfig{SecretKey: secret, APIBase: tc.base}, nil)
		switch {
		case tc.ok && err != nil:
			t.Errorf("NewStripe(APIBase %q): got %v, want nil", tc.base, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), "STRIPE_API_BASE") || !strings.Contains(err.Error(), "https")):
			t.Errorf("NewStripe(APIBase %q): got %v, want an error naming STRIPE_API_BASE and https", tc.base, err)
		}
		if err != nil && strings.Contains(err.Error(), secret[8:]) {
			t.Errorf("NewStripe(APIBase %q): got %q, want the key left out", tc.base, err)
		}
	}
}
