package tasks_test

import (
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/tasks"
)

// FuzzFromJSON feeds arbitrary bytes to the decode + validate path every
// producer (HTTP API, jobctl, scheduler) goes through. It must never panic;
// whatever it accepts must re-decode and validate, and must carry no raw
// CR/LF in anything headed for a mail header.
func FuzzFromJSON(f *testing.F) {
	seeds := []struct{ typ, body string }{
		{"send_release_email", `{"transactionId":"esc-1","recipientEmail":"a@example.com","amount":1,"currency":"USD"}`},
		{"send_release_email", `{"transactionId":"esc-1","recipientEmail":"a@example.com\r\nBcc: x@y.z","amount":1,"currency":"USD"}`},
		{"send_refund_email", `{"transactionId":"esc-1","recipientEmail":"a@example.com","amount":1,"currency":"USD","reason":"x\u0000"}`},
		{"send_dispute_email", `{"transactionId":"t","disputeId":"d","recipientEmail":"a@b.co","reason":"r"}`},
		{"stripe_capture_payment", `{"transactionId":"t","paymentIntentId":"pi_1","amountToCapture":1e30}`},
		{"stripe_refund_payment", `{"transactionId":"t","paymentIntentId":"pi_1","reason":"duplicate"}`},
		{"webhook_escrow_status_changed", `{"eventId":"e","partnerId":"p","transactionId":"t","previousStatus":"funded","status":"released","occurredAt":"2026-01-01T00:00:00Z"}`},
		{"notify_dispute_resolved", `{"disputeId":"d","transactionId":"t","resolution":"split","buyerEmail":"b@x.io","sellerEmail":"s@x.io"}`},
		{"audit_log_created", `{"eventId":"e","actor":"a","action":"x","occurredAt":"2026-01-01T00:00:00Z","metadata":{"a":{"b":[1,2,3]}}}`},
		{"audit_log_created", `{"eventId":"e","metadata":` + strings.Repeat("[", 5000) + `}`},
		{"nope", `{}`},
		{"send_release_email", "\xff\xfe"},
	}
	for _, s := range seeds {
		f.Add(s.typ, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, typ string, body []byte) {
		task, err := tasks.FromJSON(typ, body)
		if err != nil {
			if task != nil {
				t.Fatalf("got a task and an error %v", err)
			}
			return
		}
		if !strings.HasPrefix(task.ID, typ+":") || task.Type() != typ {
			t.Fatalf("got id %q type %q for type %q", task.ID, task.Type(), typ)
		}
		again, err := tasks.FromJSON(typ, task.Payload())
		if err != nil || again.ID != task.ID {
			t.Fatalf("accepted payload does not round-trip: %v", err)
		}
	})
}
