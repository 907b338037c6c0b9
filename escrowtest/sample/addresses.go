package sample

import (
	"strings"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// AddressCandidates are e-mail addresses of every shape a customer may
// have, tried against the validator by Addresses; some are there to be
// refused (the validator decides, not this list).
var AddressCandidates = []string{
	"jane@bücher.de",
	"名前@例え.jp",
	`"jane doe"@example.com`,
	`"jane@doe"@example.com`,
	`"jane doe@home"@example.com`,
	`" "@example.com`,
	`"j.a.n.e"@example.com`,
	`"jane\"doe"@example.com`,
	"o'brien@example.com",
	"o'brien+escrow@example.ie",
	"jane+tag@example.com",
	"jane.doe+tag+more@mail.sub.example.co.uk",
	strings.Repeat("a", 64) + "@example.com",
	strings.Repeat("ü", 64) + "@example.com",
	"z" + strings.Repeat("9", 63) + "@sub.sub2.example.org",
	"x@example.com",
	"a!#$%&'*+-/=?^_`{|}~@example.com",
	"{jane}@example.com",
	"jane/doe@example.com",
	"jane=doe@example.com",
	"jane?doe@example.com",
	"jane|doe@example.com",
	"jane&doe@example.com",
	"jane@xn--bcher-kva.de",
	"ñandú@dominio.es",
	"δοκιμή@παράδειγμα.δοκιμή",
	"用户@例子.广告",
	"пользователь@пример.рф",
	"jane@sub-domain.example-site.museum",
	"jane_doe@example.com",
	"jane@example.com.",
	"jane@a~b.example",
	"JANE.DOE@EXAMPLE.COM",
	"jane@192.168.example",
	// expected to be refused
	"jane@localhost",
	"jane@[127.0.0.1]",
	"Jane <jane@example.com>",
	"jane@@example.com",
	".jane@example.com",
	"jane.@example.com",
	"jane doe@example.com",
	"jane@example",
}

// MustAcceptAddresses are forms the validator must accept; a test over
// Addresses checks it does, or that test would not cover them.
var MustAcceptAddresses = []string{
	"jane@bücher.de", "名前@例え.jp", `"jane doe"@example.com`, `"jane@doe"@example.com`,
	"o'brien@example.com", strings.Repeat("a", 64) + "@example.com", "jane+tag@example.com",
	"jane.doe+tag+more@mail.sub.example.co.uk",
}

// Addresses runs the validator, as configured for the payloads'
// recipientEmail, over AddressCandidates: accepted and refused, in order.
func Addresses() (accepted, refused []string) {
	for _, c := range AddressCandidates {
		p := payloads.SendReleaseEmail{TransactionID: "esc-1", RecipientEmail: c, Amount: 1, Currency: "USD"}
		if payloads.Validate(p) == nil {
			accepted = append(accepted, c)
		} else {
			refused = append(refused, c)
		}
	}
	return accepted, refused
}
