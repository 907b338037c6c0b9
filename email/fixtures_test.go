package email_test

import (
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
)

// kindCase is one kind of mail with what its rendering must show.
type kindCase struct {
	name    string
	data    payloads.Payload
	subject string
	// text and html must each appear in the plain-text and HTML body.
	text, html []string
	// notHTML must not appear in the HTML body (unescaped markup).
	notHTML []string
}

// kindCases covers the four kinds; to is the recipient of each.
func kindCases(to string) []kindCase {
	return []kindCase{
		{
			name: "release",
			data: payloads.SendReleaseEmail{
				TransactionID: "esc-123", RecipientEmail: to, Amount: 12345, Currency: "USD",
				RecipientName: `<script>alert("x")</script> & Co`,
			},
			subject: "Funds released for escrow esc-123",
			text:    []string{`Hello <script>alert("x")</script> & Co,`, "escrow esc-123 have been released", "123.45 USD"},
			html:    []string{"Hello &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co,", "<strong>esc-123</strong>", "123.45 USD"},
			notHTML: []string{"<script>"},
		},
		{
			name: "refund",
			data: payloads.SendRefundEmail{
				TransactionID: "esc-124", RecipientEmail: to, Amount: 1200, Currency: "JPY",
				Reason: "Item <b>never</b> arrived",
			},
			subject: "Refund issued for escrow esc-124",
			text:    []string{"Hello,", "refund has been issued for escrow esc-124", "1200 JPY", "Reason: Item <b>never</b> arrived"},
			html:    []string{"Hello,", "1200 JPY", "Reason: Item &lt;b&gt;never&lt;/b&gt; arrived"},
			notHTML: []string{"<b>never"},
		},
		{
			name: "dispute",
			data: payloads.SendDisputeEmail{
				TransactionID: "esc-125", DisputeID: "dsp-9", RecipientEmail: to,
				Reason: "The buyer says:\n\"<img src=x onerror=alert(1)>\"",
			},
			subject: "Dispute dsp-9 on escrow esc-125",
			text:    []string{"dispute dsp-9 on escrow esc-125", "The buyer says:\n\"<img src=x onerror=alert(1)>\""},
			html:    []string{"<strong>dsp-9</strong>", "&lt;img src=x onerror=alert(1)&gt;"},
			notHTML: []string{"<img"},
		},
		{
			name: "payment confirmed",
			data: payloads.SendPaymentConfirmedEmail{
				TransactionID: "esc-126", PaymentIntentID: "pi_3Abc", RecipientEmail: to, Amount: 5, Currency: "EUR",
			},
			subject: "Payment received for escrow esc-126",
			text:    []string{"payment of 0.05 EUR for escrow esc-126", "Payment reference: pi_3Abc"},
			html:    []string{"<strong>0.05 EUR</strong>", "pi_3Abc"},
		},
	}
}

// mail is a release mail for job id to to.
func mail(id, to string) handlers.Mail {
	return handlers.Mail{JobID: id, To: to, Data: payloads.SendReleaseEmail{
		TransactionID: "esc-1", RecipientEmail: to, Amount: 100, Currency: "USD",
	}}
}

// checkBodies fails unless the plain-text and HTML bodies hold what tc
// says they must (and the HTML none of tc.notHTML).
func (tc kindCase) checkBodies(t *testing.T, text, html string) {
	t.Helper()
	for _, w := range tc.text {
		if !strings.Contains(text, w) {
			t.Errorf("text: got %q, want it to contain %q", text, w)
		}
	}
	for _, w := range tc.html {
		if !strings.Contains(html, w) {
			t.Errorf("html: got %q, want it to contain %q", html, w)
		}
	}
	for _, w := range tc.notHTML {
		if strings.Contains(html, w) {
			t.Errorf("html: got %q, want no unescaped %q", html, w)
		}
	}
}
