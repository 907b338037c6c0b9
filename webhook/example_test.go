package webhook_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/escrowjobs/escrowjobs/webhook"
)

// Sign the Standard Webhooks published test vector.
func ExampleSign() {
	sig, err := webhook.Sign(
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0),
		[]byte(`{"test": 2432232314}`),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sig)
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// A partner's endpoint verifies each request on its raw body before
// decoding it, and uses webhook-id to drop duplicates.
func ExampleVerify() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // from the escrow service

	endpoint := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read error", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, r.Header, body, 5*time.Minute); err != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		// Process body once per r.Header.Get("webhook-id").
		w.WriteHeader(http.StatusNoContent)
	}

	// A request as the escrow service sends it, signed over sentBody.
	request := func(sentBody, receivedBody []byte) *http.Request {
		now := time.Now()
		sig, _ := webhook.Sign(secret, "evt_1", now, sentBody)
		req := httptest.NewRequest(http.MethodPost, "/webhooks/escrow", bytes.NewReader(receivedBody))
		req.Header.Set(webhook.HeaderID, "evt_1")
		req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(webhook.HeaderSignature, sig)
		return req
	}
	body := []byte(`{"type":"escrow.status_changed","data":{"transactionId":"esc-123","status":"released"}}`)
	tampered := bytes.Replace(body, []byte("released"), []byte("refunded"), 1)

	rec := httptest.NewRecorder()
	endpoint(rec, request(body, body))
	fmt.Println("genuine:", rec.Code)

	rec = httptest.NewRecorder()
	endpoint(rec, request(body, tampered))
	fmt.Println("tampered:", rec.Code)
	// Output:
	// genuine: 204
	// tampered: 401
}
