package tasks_test

import (
	"testing"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// TestMaskingKnowsEveryKind: the payload masking decodes each of the
// catalog's types and knows its address fields, so a new type cannot show
// its addresses raw.
func TestMaskingKnowsEveryKind(t *testing.T) {
	want := map[string][]string{
		"send_release_email":           {"recipientEmail"},
		"send_refund_email":            {"recipientEmail"},
		"send_dispute_email":           {"recipientEmail"},
		"send_payment_confirmed_email": {"recipientEmail"},
		"notify_dispute_resolved":      {"buyerEmail", "sellerEmail"},
	}
	for _, k := range tasks.Kinds() {
		got, ok := payloads.AddressFields(k.Type)
		if !ok {
			t.Errorf("%s: payloads.AddressFields does not know it", k.Type)
			continue
		}
		if len(got) != len(want[k.Type]) {
			t.Errorf("%s: got address fields %q, want %q", k.Type, got, want[k.Type])
			continue
		}
		for i := range got {
			if got[i] != want[k.Type][i] {
				t.Errorf("%s: got address fields %q, want %q", k.Type, got, want[k.Type])
			}
		}
	}
}
