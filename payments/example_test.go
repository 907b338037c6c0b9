package payments_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payments"
)

func ExampleNewStripe() {
	// A stand-in for api.stripe.com with one authorised PaymentIntent.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.Path {
		case "GET /v1/payment_intents/pi_123":
			io.WriteString(w, `{"id":"pi_123","object":"payment_intent","status":"requires_capture","amount_capturable":5000}`)
		case "POST /v1/payment_intents/pi_123/capture":
			io.WriteString(w, `{"id":"pi_123","object":"payment_intent","status":"succeeded","amount_received":5000,"latest_charge":"ch_123"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()

	p, err := payments.NewStripe(payments.StripeConfig{
		SecretKey: "sk_test_123", // STRIPE_SECRET_KEY
		APIBase:   api.URL,       // STRIPE_API_BASE; empty in production
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := p.Capture(context.Background(), handlers.Capture{
		JobID:           "stripe_capture_payment:capture-pi_123",
		TransactionID:   "esc-123",
		PaymentIntentID: "pi_123",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.ID, res.Status, res.AlreadyDone)
	// Output: ch_123 succeeded false
}

func ExampleIdempotencyKey() {
	fmt.Println(payments.IdempotencyKey("stripe_refund_payment:refund-pi_123-full"))
	// Output: stripe_refund_payment:refund-pi_123-full
}
