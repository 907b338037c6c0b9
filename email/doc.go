// Package email renders and delivers the customer e-mails of the escrow
// service: "funds released", "refund issued", "dispute" and "payment
// received". Each mailer implements handlers.Mailer.
//
// # Rendering
//
// [Render] turns a handlers.Mail into a [Message]: a subject and a plain-text
// and an HTML body from the embedded templates the registry names for the
// payload's type (tasks.Type.Template, listed by [Templates]) (text/template and
// html/template, so every value in the HTML body is escaped). Amounts are
// shown in major units with their currency, "123.45 USD", "1200 JPY".
//
// # Mailers
//
//   - [SMTP] delivers through an SMTP server named by SMTP_URL
//     (smtp://[user:pass@]host:port with mandatory STARTTLS, "?tls=none" for
//     a local relay, smtps:// for implicit TLS). The Message-ID derives from
//     the job ID, so a retried send carries the same Message-ID.
//   - [Resend] delivers through the Resend API with an Idempotency-Key
//     derived from the job ID, so a retried send is not delivered twice.
//   - devmode.Mailer sends nothing; it renders and logs what it would send
//     (the -dev mode).
//
// # Errors
//
// A failure that will not go away by retrying (an SMTP 5xx reply, an HTTP
// 4xx other than 408, 409 and 429, a payload type without a template) wraps
// asynq.SkipRetry and keeps its cause. Anything else is transient; a peer's
// Retry-After comes back as a *retry.AfterError. No error or log line
// carries a recipient address unmasked.
package email
