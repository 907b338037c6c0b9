package tasks_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// TestDecodeErrorsCapEchoedNames: a huge unknown field or type name is
// echoed as its first 64 characters and "…", in the field list and in the
// error text, strict and lenient decoding alike.
func TestDecodeErrorsCapEchoedNames(t *testing.T) {
	huge := strings.Repeat("ß", 30_000) // 60 KB
	body := `{"transactionId":"t","recipientEmail":"a@example.com","amount":1,"currency":"USD","` + huge + `":1}`
	for _, c := range []struct {
		name string
		err  func() error
	}{
		{"FromJSON unknown field", func() error { _, err := tasks.FromJSON("send_release_email", []byte(body)); return err }},
		{"Decode unknown field", func() error { _, err := tasks.Decode[payloads.SendReleaseEmail]([]byte(body)); return err }},
		{"FromJSON unknown type", func() error { _, err := tasks.FromJSON(huge, []byte(`{}`)); return err }},
	} {
		err := c.err()
		if err == nil {
			t.Fatalf("%s: got nil, want an error", c.name)
		}
		if got := len(err.Error()); got > 1024 {
			t.Errorf("%s: got an error of %d bytes, want at most 1024", c.name, got)
		}
		if want := strings.Repeat("ß", 64) + "…"; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %.200q…, want the name cut to 64 characters and …", c.name, err.Error())
		}
		if !utf8.ValidString(err.Error()) {
			t.Errorf("%s: got invalid UTF-8 (a character cut in half)", c.name)
		}
		var ve *payloads.ValidationError
		if errors.As(err, &ve) {
			for _, f := range ve.Fields {
				if utf8.RuneCountInString(f.Field) > 65 {
					t.Errorf("%s: got field name of %d characters, want at most 65", c.name, utf8.RuneCountInString(f.Field))
				}
			}
		}
	}
}
