package webhook_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/escrowjobs/escrowjobs/webhook"
)

// A Signer sets the three Standard Webhooks headers; the receiver checks
// them with Verify.
func ExampleSigner() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	body := []byte(`{"test": 2432232314}`)
	h := http.Header{}
	if err := signer.Sign(h, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), body); err != nil {
		panic(err)
	}
	fmt.Println(h.Get(webhook.HeaderSignature))
	fmt.Println(signer)
	_, err = webhook.NewSigner("whsec_c2hvcnQ=")
	fmt.Println(err)
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// webhook.Signer(1 keys)
	// the key is 5 bytes, want at least 16
}
