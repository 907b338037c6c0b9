package payloads_test

import (
	"fmt"

	"github.com/escrowjobs/escrowjobs/payloads"
)

func ExampleMaskPayload() {
	raw := []byte(`{"disputeId":"d-1","transactionId":"esc-1","resolution":"split","buyerEmail":"\"jane doe\"@example.com","sellerEmail":"名前@例え.jp"}`)
	fmt.Println(string(payloads.MaskPayload(payloads.NotifyDisputeResolved{}, raw)))
	// Output: {"disputeId":"d-1","transactionId":"esc-1","resolution":"split","buyerEmail":"\"***@example.com","sellerEmail":"名***@例え.jp"}
}

func ExampleMaskEmailsString() {
	fmt.Println(payloads.MaskEmailsString(`smtp: mailbox o'brien@bücher.de refused; bad recipient "\"jane doe\"@example.com"`))
	// Output: smtp: mailbox o***@bücher.de refused; bad recipient "\"***@example.com"
}

func ExampleAddressFields() {
	fmt.Println(payloads.AddressFields(payloads.NotifyDisputeResolved{}), payloads.AddressFields(payloads.StripeCapturePayment{}))
	// Output: [buyerEmail sellerEmail] []
}
