package devmode_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/escrowjobs/escrowjobs/devmode"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
)

func ExampleNewMailer() {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	mailer := devmode.NewMailer(log)
	_ = mailer.SendMail(context.Background(), handlers.Mail{
		JobID: "send_refund_email:escrow-esc-7-refund-0f1e2d3c4b5a6978",
		To:    "jane.doe@example.com",
		Data: payloads.SendRefundEmail{
			TransactionID: "esc-7", RecipientEmail: "jane.doe@example.com", Amount: 990, Currency: "EUR",
		},
	})
	// Output:
	// level=INFO msg="email not sent (dev mode)" task_id=send_refund_email:escrow-esc-7-refund-0f1e2d3c4b5a6978 task_type=send_refund_email to=j***@example.com subject="Refund issued for escrow esc-7"
}
