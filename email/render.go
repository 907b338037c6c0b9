package email

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	"sync"
	texttemplate "text/template"
	"unicode"

	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// Message is a rendered e-mail: subject, plain-text body and HTML body.
type Message struct {
	Subject string
	Text    string
	HTML    string
}

// view is what the templates see. Fields a type does not have stay empty.
type view struct {
	Subject         string
	Name            string
	TransactionID   string
	DisputeID       string
	PaymentIntentID string
	Amount          string
	Reason          string
}

// Render renders m from the template its payload type names in the
// registry (tasks.Type.Template). A payload type without a template is an
// error that wraps asynq.SkipRetry.
func Render(m handlers.Mail) (Message, error) {
	v, err := describe(m.Data)
	if err != nil {
		return Message{}, err
	}
	sets, err := templates()
	if err != nil {
		return Message{}, fmt.Errorf("email: parse templates: %w", err)
	}
	name := templateOf(m.Data)
	set, ok := sets[name]
	if !ok {
		return Message{}, fmt.Errorf("email: no template for payload type %T: %w", m.Data, asynq.SkipRetry)
	}
	var text, html bytes.Buffer
	if err := set.text.ExecuteTemplate(&text, "text", v); err != nil {
		return Message{}, fmt.Errorf("email: render %s text: %w", name, err)
	}
	if err := set.html.ExecuteTemplate(&html, "html", v); err != nil {
		return Message{}, fmt.Errorf("email: render %s html: %w", name, err)
	}
	return Message{
		Subject: v.Subject,
		Text:    strings.TrimSpace(text.String()) + "\n",
		HTML:    strings.TrimSpace(html.String()) + "\n",
	}, nil
}

// templateOf is the template the registry names for p's type; "" for none.
func templateOf(p payloads.Payload) string {
	if p == nil {
		return ""
	}
	t, err := tasks.Lookup(p.TaskType())
	if err != nil {
		return ""
	}
	return t.Template
}

// describe fills the view of one payload.
func describe(p payloads.Payload) (view, error) {
	switch d := p.(type) {
	case payloads.SendReleaseEmail:
		return view{
			Subject:       "Funds released for escrow " + d.TransactionID,
			Name:          d.RecipientName,
			TransactionID: d.TransactionID,
			Amount:        FormatAmount(d.Amount, d.Currency),
		}.clean(), nil
	case payloads.SendRefundEmail:
		return view{
			Subject:       "Refund issued for escrow " + d.TransactionID,
			TransactionID: d.TransactionID,
			Amount:        FormatAmount(d.Amount, d.Currency),
			Reason:        d.Reason,
		}.clean(), nil
	case payloads.SendDisputeEmail:
		return view{
			Subject:       "Dispute " + d.DisputeID + " on escrow " + d.TransactionID,
			TransactionID: d.TransactionID,
			DisputeID:     d.DisputeID,
			Reason:        d.Reason,
		}.clean(), nil
	case payloads.SendPaymentConfirmedEmail:
		return view{
			Subject:         "Payment received for escrow " + d.TransactionID,
			TransactionID:   d.TransactionID,
			PaymentIntentID: d.PaymentIntentID,
			Amount:          FormatAmount(d.Amount, d.Currency),
		}.clean(), nil
	}
	return view{}, fmt.Errorf("email: no template for payload type %T: %w", p, asynq.SkipRetry)
}

// clean keeps control characters out of one-line fields (the subject goes
// into a header); the reason keeps its line breaks and tabs.
func (v view) clean() view {
	oneLine := func(s string) string {
		return strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, s)
	}
	v.Subject, v.Name = oneLine(v.Subject), oneLine(v.Name)
	v.TransactionID, v.DisputeID, v.PaymentIntentID = oneLine(v.TransactionID), oneLine(v.DisputeID), oneLine(v.PaymentIntentID)
	v.Reason = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return -1
		}
		return r
	}, strings.ReplaceAll(v.Reason, "\r\n", "\n"))
	return v
}

// templateSet is the text and HTML template of one type of mail.
type templateSet struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// Templates lists the e-mail templates the registry names (tasks.Type.Template),
// one file each: templates/<name>.tmpl defines its "text" and "html" bodies
// (the HTML one as "content" inside the shared layout).
func Templates() []string {
	var names []string
	for _, t := range tasks.Types() {
		if t.Template != "" {
			names = append(names, t.Template)
		}
	}
	return names
}

// templates parses the embedded templates once; they never change afterwards.
var templates = sync.OnceValues(func() (map[string]templateSet, error) {
	names := Templates()
	sets := make(map[string]templateSet, len(names))
	for _, k := range names {
		text, err := texttemplate.New(k).Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.txt.tmpl", "templates/"+k+".tmpl")
		if err != nil {
			return nil, err
		}
		html, err := htmltemplate.New(k).Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.html.tmpl", "templates/"+k+".tmpl")
		if err != nil {
			return nil, err
		}
		sets[k] = templateSet{text: text, html: html}
	}
	return sets, nil
})
