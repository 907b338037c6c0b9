package tasks_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// invisibles are characters that change how mail text reads without being
// seen: bidi embeddings, overrides and isolates, marks, zero-width and
// other format characters, line and paragraph separators.
var invisibles = []rune{
	0x202A, 0x202B, 0x202C, 0x202D, 0x202E, // LRE RLE PDF LRO RLO
	0x2066, 0x2067, 0x2068, 0x2069, // LRI RLI FSI PDI
	0x200E, 0x200F, 0x061C, // LRM RLM ALM
	0x200B, 0x2060, 0xFEFF, 0x2061, 0x180E, // zero-width space, word joiner, BOM, function application, Mongolian vowel separator
	0x2028, 0x2029, // line and paragraph separators
	0xE0041, // a tag character
}

// TestConstructorsRejectInvisibleCharacters: every free-text field of a
// mail refuses them at the door, naming the field; ordinary non-ASCII text,
// including joiners that scripts and emoji need, passes.
func TestConstructorsRejectInvisibleCharacters(t *testing.T) {
	build := map[string]func(s string) error{
		"recipientName": func(s string) error {
			_, err := tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{TransactionID: "esc-1", RecipientEmail: "jane@example.com", Amount: 1, Currency: "USD", RecipientName: s})
			return err
		},
		"reason (refund)": func(s string) error {
			_, err := tasks.NewSendRefundEmailTask(payloads.SendRefundEmail{TransactionID: "esc-1", RecipientEmail: "jane@example.com", Amount: 1, Currency: "USD", Reason: s})
			return err
		},
		"reason (dispute)": func(s string) error {
			_, err := tasks.NewSendDisputeEmailTask(payloads.SendDisputeEmail{TransactionID: "esc-1", DisputeID: "d-1", RecipientEmail: "jane@example.com", Reason: s})
			return err
		},
	}
	for name, fn := range build {
		field := name
		if i := len("reason"); len(name) > i && name[:i] == "reason" {
			field = "reason"
		}
		for _, r := range invisibles {
			text := fmt.Sprintf("Refund of invoice %cfdp.exe", r)
			err := fn(text)
			var ve *payloads.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != field {
				t.Errorf("%s with U+%04X: got %v, want one bad field %s", name, r, err, field)
			}
		}
		for _, ok := range []string{"Zoë Ångström", "名前 太郎", "مرحبا بالعالم", "می\u200cخواهم", "👩‍💻 developer", "O'Brien-Smith, Jr."} {
			if err := fn(ok); err != nil {
				t.Errorf("%s %q: got %v, want nil", name, ok, err)
			}
		}
	}
}
