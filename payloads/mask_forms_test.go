package payloads_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/escrowjobs/escrowjobs/escrowtest/sample"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// acceptedAddresses is every candidate address the validator accepts,
// checked to include the forms the issue names.
func acceptedAddresses(t *testing.T) []string {
	t.Helper()
	ok, refused := sample.Addresses()
	for _, r := range refused {
		t.Logf("validator refuses %q", r)
	}
	for _, m := range sample.MustAcceptAddresses {
		if !slices.Contains(ok, m) {
			t.Fatalf("the validator refuses %q; want it among the accepted forms", m)
		}
	}
	return ok
}

// masked is what an address becomes: its first character, "***", "@" and
// the domain (the local part may itself hold an '@' when quoted).
func masked(addr string) string {
	i := strings.LastIndex(addr, "@")
	r, _ := utf8.DecodeRuneInString(addr)
	return string(r) + "***" + addr[i:]
}

// TestMaskEveryAcceptedAddressForm: each form the validator accepts is
// masked exactly, in free text (errors, log lines, paths, Go-quoted), in
// arbitrary JSON, and in a payload decoded by its type.
func TestMaskEveryAcceptedAddressForm(t *testing.T) {
	addrs := acceptedAddresses(t)
	t.Logf("%d of %d candidates accepted", len(addrs), len(sample.AddressCandidates))
	for _, a := range addrs {
		want := masked(a)
		texts := []struct{ in, want string }{
			{a, want},
			{"smtp: mailbox " + a + " refused the message", "smtp: mailbox " + want + " refused the message"},
			{"to: " + a + ", cc: nobody", "to: " + want + ", cc: nobody"},
			{"<" + a + ">", "<" + want + ">"},
			{"(" + a + ")", "(" + want + ")"},
			{"send_release_email:" + a, "send_release_email:" + want},
			{"recipient: " + a + " attempt: 2", "recipient: " + want + " attempt: 2"},
			{"\"recipient\":\"" + jsonInner(a) + "\"", "\"recipient\":\"" + jsonInner(want) + "\""},
			{fmt.Sprintf("bad recipient %q", a), fmt.Sprintf("bad recipient %q", want)},
		}
		for _, c := range texts {
			if got := payloads.MaskEmailsString(c.in); got != c.want {
				t.Errorf("MaskEmailsString(%q):\n got %q\nwant %q", c.in, got, c.want)
			}
		}
		// Any JSON: every string, however it is escaped, is masked.
		raw, _ := json.Marshal(map[string]any{"note": "write to " + a + " today", "nested": []any{a, map[string]string{"to": a}}, "n": 1.50})
		var doc struct {
			Note   string `json:"note"`
			Nested []json.RawMessage
			N      json.Number `json:"n"`
		}
		if err := json.Unmarshal(payloads.MaskedJSON(raw), &doc); err != nil {
			t.Fatalf("MaskedJSON(%s): not JSON: %v", raw, err)
		}
		if doc.Note != "write to "+want+" today" || string(doc.N) != "1.5" {
			t.Errorf("MaskedJSON(%s): got note %q n %s, want %q and 1.5", raw, doc.Note, doc.N, "write to "+want+" today")
		}
		if got := string(payloads.MaskedJSON(raw)); strings.Contains(got, a) || strings.Contains(got, jsonInner(a)) {
			t.Errorf("MaskedJSON(%s): got %s, want no raw address", raw, got)
		}
		// A payload, decoded by its type: the address fields are masked
		// whatever their content; key order is kept.
		for _, p := range []payloads.Payload{
			payloads.SendReleaseEmail{TransactionID: "esc-1", RecipientEmail: a, Amount: 1, Currency: "USD", RecipientName: "Jane"},
			payloads.NotifyDisputeResolved{DisputeID: "d", TransactionID: "t", Resolution: "split", BuyerEmail: a, SellerEmail: a},
		} {
			b, _ := json.Marshal(p)
			got := payloads.MaskPayload(p, b)
			var m map[string]any
			if err := json.Unmarshal(got, &m); err != nil {
				t.Fatalf("MaskPayload(%s): not JSON: %v", b, err)
			}
			for _, f := range []string{"recipientEmail", "buyerEmail", "sellerEmail"} {
				if v, ok := m[f]; ok && v != want {
					t.Errorf("MaskPayload(%s) %s: got %q, want %q", p.TaskType(), f, v, want)
				}
			}
			if strings.Contains(string(got), a) || strings.Contains(string(got), jsonInner(a)) {
				t.Errorf("MaskPayload(%s): got %s, want no raw address", p.TaskType(), got)
			}
			if first := strings.Index(string(got), `"`); string(got[first:first+len(`"transactionId"`)]) != `"transactionId"` && string(got[first:first+len(`"disputeId"`)]) != `"disputeId"` {
				t.Errorf("MaskPayload(%s): got %s, want the fields in their order", p.TaskType(), got)
			}
		}
	}
}

// TestMaskPayloadKnowsAddressFieldsByType: a value the free-text pattern
// cannot recognise is still masked in an address field, and only there;
// without a type, a key ending in "email" counts as an address field.
func TestMaskPayloadKnowsAddressFieldsByType(t *testing.T) {
	b := []byte(`{"transactionId":"esc-1","recipientEmail":"not really an address","amount":1,"currency":"USD","recipientName":"Jane"}`)
	got := string(payloads.MaskPayload(payloads.SendReleaseEmail{}, b))
	if want := `{"transactionId":"esc-1","recipientEmail":"***","amount":1,"currency":"USD","recipientName":"Jane"}`; got != want {
		t.Errorf("MaskPayload:\n got %s\nwant %s", got, want)
	}
	if got, want := string(payloads.MaskedJSON([]byte(`{"partnerEmail":"ops at example","note":"ops at example"}`))), `{"partnerEmail":"***","note":"ops at example"}`; got != want {
		t.Errorf("MaskedJSON: got %s, want %s", got, want)
	}
	// Garbage stays readable, masked as text.
	if got := string(payloads.MaskPayload(payloads.SendReleaseEmail{}, []byte("\xffjane@bücher.de"))); got != `"\ufffdj***@bücher.de"` {
		t.Errorf("MaskPayload of garbage: got %s", got)
	}
}

// jsonInner is a as it appears inside a JSON string.
func jsonInner(a string) string {
	b, _ := json.Marshal(a)
	return string(b[1 : len(b)-1])
}
