package tasks_test

import (
	"encoding/json"
	"testing"

	"github.com/escrowjobs/escrowjobs/tasks"
)

// TestMaskPayloadKnowsEveryType: every type of the catalog masks its own
// address fields whatever they hold (a value no pattern would recognise),
// so a new type cannot show its addresses raw.
func TestMaskPayloadKnowsEveryType(t *testing.T) {
	want := map[string][]string{
		"send_release_email":           {"recipientEmail"},
		"send_refund_email":            {"recipientEmail"},
		"send_dispute_email":           {"recipientEmail"},
		"send_payment_confirmed_email": {"recipientEmail"},
		"notify_dispute_resolved":      {"buyerEmail", "sellerEmail"},
	}
	for _, k := range tasks.Types() {
		in := map[string]string{"transactionId": "not an address"}
		for _, f := range want[k.Name] {
			in[f] = "not an address"
		}
		b, _ := json.Marshal(in)
		var got map[string]string
		if err := json.Unmarshal(tasks.MaskPayload(k.Name, b), &got); err != nil {
			t.Fatalf("%s: %v", k.Name, err)
		}
		for _, f := range want[k.Name] {
			if got[f] != "***" {
				t.Errorf("%s: got %s %q, want ***", k.Name, f, got[f])
			}
		}
		if got["transactionId"] != "not an address" {
			t.Errorf("%s: got transactionId %q, want it untouched", k.Name, got["transactionId"])
		}
	}
}
