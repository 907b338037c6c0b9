package payments_test

import (
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/payments"
)

// TestStripeBaseNeedsHTTPSOffLoopback: STRIPE_API_BASE carries the secret
// key, so plain http is for a loopback test peer (stripe-mock) only. The
// rule is tested where it lives, internal/apiurl; this shows NewStripe
// applies it, names its variable and leaves the key out.
func TestStripeBaseNeedsHTTPSOffLoopback(t *testing.T) {
	if _, err := payments.NewStripe(payments.StripeConfig{SecretKey: secret, APIBase: "http://127.0.0.1:12111"}, nil); err != nil {
		t.Errorf("NewStripe(APIBase http://127.0.0.1:12111): got %v, want nil", err)
	}
	_, err := payments.NewStripe(payments.StripeConfig{SecretKey: secret, APIBase: "http://api.stripe.com"}, nil)
	if err == nil || !strings.Contains(err.Error(), "STRIPE_API_BASE") || !strings.Contains(err.Error(), "https") {
		t.Errorf("NewStripe(APIBase http://api.stripe.com): got %v, want an error naming STRIPE_API_BASE and https", err)
	}
	if err != nil && strings.Contains(err.Error(), secret[8:]) {
		t.Errorf("NewStripe(APIBase http://api.stripe.com): got %q, want the key left out", err)
	}
}
