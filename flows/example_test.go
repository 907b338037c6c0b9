package flows_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// A flow whose steps wait for each other in a circle does not build; the
// error names a step on the cycle.
func ExampleBuilder_Build() {
	audit := func(id string) payloads.AuditLogCreated {
		return payloads.AuditLogCreated{EventID: id, Actor: "system", Action: "escrow.checked", OccurredAt: "2026-11-29T10:00:00Z"}
	}
	_, err := flows.New("check", "esc-123").
		Step("a", audit("evt-a"), flows.After("b")).
		Step("b", audit("evt-b"), flows.After("a")).
		Build()
	var be *flows.BuildError
	fmt.Println(errors.As(err, &be), be.Step)
	fmt.Println(err)
	// Output:
	// true a
	// flow "check:esc-123": step "a": after: the steps wait for each other in a cycle
}

// The release of an escrow: the capture first, then the seller's e-mail and
// the partner's webhook; the audit record at once; and, should a step fail
// for good, an audit record of the failure.
func ExampleStart() {
	const esc = "esc-123"
	f, err := flows.New("release", esc).
		Step("capture", payloads.StripeCapturePayment{TransactionID: esc, PaymentIntentID: "pi_3MtwBwLkdIwHu7ix28a3tqPa"}).
		Step("seller-email", payloads.SendReleaseEmail{TransactionID: esc, RecipientEmail: "seller@example.com", Amount: 125000, Currency: "USD"},
			flows.After("capture")).
		Step("partner-webhook", payloads.WebhookEscrowStatusChanged{EventID: "evt-123-released", PartnerID: "partner-acme", TransactionID: esc,
			PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: "2026-11-29T10:00:00Z"},
			flows.After("capture")).
		Step("audit", payloads.AuditLogCreated{EventID: "evt-123-audit", Actor: "user-48213", Action: "escrow.released", TransactionID: esc, OccurredAt: "2026-11-29T10:00:00Z"}).
		OnFailure("failure-audit", payloads.AuditLogCreated{EventID: "evt-123-release-failed", Actor: "system", Action: "escrow.release_failed", TransactionID: esc, OccurredAt: "2026-11-29T10:00:00Z"}).
		Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	opt, err := tasks.RedisFromEnv(os.Getenv)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := tasks.NewClient(opt)
	defer c.Close()
	id, err := flows.Start(context.Background(), c, f)
	if errors.Is(err, flows.ErrDuplicate) {
		fmt.Println("already started:", id)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("started", id)
}
