package email_test

import (
	"fmt"
	"log/slog"

	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
)

func ExampleRender() {
	msg, err := email.Render(handlers.Mail{
		JobID: "send_release_email:escrow-esc-123-release-0f1e2d3c4b5a6978",
		To:    "jane.doe@example.com",
		Data: payloads.SendReleaseEmail{
			TransactionID: "esc-123", RecipientEmail: "jane.doe@example.com",
			Amount: 12345, Currency: "USD", RecipientName: "Jane",
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(msg.Subject)
	fmt.Print(msg.Text)
	// Output:
	// Funds released for escrow esc-123
	// Hello Jane,
	//
	// The funds held in escrow esc-123 have been released.
	//
	// Amount released: 123.45 USD
	//
	// --
	// This is an automated message about escrow esc-123. Please do not reply to it.
}

func ExampleFormatAmount() {
	fmt.Println(email.FormatAmount(12345, "USD"))
	fmt.Println(email.FormatAmount(1200, "JPY"))
	fmt.Println(email.FormatAmount(1234, "KWD"))
	// Output:
	// 123.45 USD
	// 1200 JPY
	// 1.234 KWD
}

func ExampleParseSMTPURL() {
	for _, u := range []string{
		"smtp://apikey:secret@smtp.example.com:587",
		"smtp://127.0.0.1:1025?tls=none",
		"smtps://smtp.example.com",
	} {
		s, err := email.ParseSMTPURL(u)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s tls=%s user=%q\n", s.Addr(), s.TLS, s.Username)
	}
	// Output:
	// smtp.example.com:587 tls=starttls user="apikey"
	// 127.0.0.1:1025 tls=none user=""
	// smtp.example.com:465 tls=implicit user=""
}

func ExampleNewSMTP() {
	mailer, err := email.NewSMTP(email.SMTPConfig{
		URL:  "smtp://apikey:secret@smtp.example.com:587", // SMTP_URL
		From: "Example Escrow <escrow@example.com>",       // MAIL_FROM
	}, slog.Default())
	if err != nil {
		fmt.Println(err)
		return
	}
	var _ handlers.Mailer = mailer
	fmt.Println(email.MessageID("send_release_email:escrow-esc-123-release-0f1e2d3c4b5a6978", "example.com"))
	// Output:
	// 3f1a7901331f4c4405d11f444d130054@example.com
}
