package tasks_test

import (
	"fmt"

	"github.com/escrowjobs/escrowjobs/tasks"
)

// The registry lists every job type with its defaults; e-mail types name
// their template.
func ExampleTypes() {
	for _, t := range tasks.Types() {
		fmt.Printf("%-30s %-8s %-4v %q\n", t.Name, t.Queue, t.Timeout, t.Template)
	}
	// Output:
	// send_release_email             default  30s  "release"
	// send_refund_email              default  30s  "refund"
	// send_dispute_email             default  30s  "dispute"
	// send_payment_confirmed_email   default  30s  "payment_confirmed"
	// stripe_capture_payment         critical 1m0s ""
	// stripe_refund_payment          critical 1m0s ""
	// webhook_escrow_status_changed  default  20s  ""
	// notify_dispute_resolved        default  15s  ""
	// audit_log_created              low      15s  ""
}

// Code that handles job types by name looks them up in the registry.
func ExampleLookup() {
	t, err := tasks.Lookup("stripe_refund_payment")
	fmt.Println(t.Name, t.Queue, err)
	_, err = tasks.Lookup("send_fax")
	fmt.Println(err)
	// Output:
	// stripe_refund_payment critical <nil>
	// unknown job type "send_fax": want one of send_release_email, send_refund_email, send_dispute_email, send_payment_confirmed_email, stripe_capture_payment, stripe_refund_payment, webhook_escrow_status_changed, notify_dispute_resolved, audit_log_created
}
