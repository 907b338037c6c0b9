package email_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/devmode"
	"github.com/escrowjobs/escrowjobs/email"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/hibiken/asynq"
)

func TestLogMailer(t *testing.T) {
	const to = "jane.doe@example.com"
	for _, tc := range kindCases(to) {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			mailer := devmode.NewMailer(slog.New(slog.NewJSONHandler(&buf, nil)))
			id := "job-" + tc.data.TaskType()
			if err := mailer.SendMail(context.Background(), handlers.Mail{JobID: id, To: to, Data: tc.data}); err != nil {
				t.Fatalf("SendMail: got error %v, want nil", err)
			}
			got := buf.String()
			if strings.Contains(got, to) {
				t.Errorf("log: got %s, want no raw recipient address", got)
			}
			for _, w := range []string{`"task_id":"` + id + `"`, `"task_type":"` + tc.data.TaskType() + `"`, `"to":"j***@example.com"`, `"subject":"` + tc.subject + `"`} {
				if !strings.Contains(got, w) {
					t.Errorf("log: got %s, want it to contain %s", got, w)
				}
			}
		})
	}
}

func TestLogMailerRefusesUnknownPayload(t *testing.T) {
	var buf bytes.Buffer
	err := devmode.NewMailer(slog.New(slog.NewTextHandler(&buf, nil))).SendMail(context.Background(), handlers.Mail{JobID: "job-1", To: "a@example.com"})
	if !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("SendMail without a payload: got %v, want a permanent error", err)
	}
	if buf.Len() != 0 {
		t.Errorf("log: got %q, want nothing", buf.String())
	}
}

func TestMailersLogNoRawAddress(t *testing.T) {
	const to = "jane.doe@example.com"
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := startFakeResend(t)
	r, err := email.NewResend(email.ResendConfig{APIKey: "re_1", From: from, BaseURL: f.srv.URL}, log)
	if err != nil {
		t.Fatal(err)
	}
	addr := fakeSMTP(t, nil)
	s, err := email.NewSMTP(email.SMTPConfig{URL: "smtp://" + addr + "?tls=none", From: from}, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []handlers.Mailer{r, s} {
		if err := m.SendMail(context.Background(), mail("job-1", to)); err != nil {
			t.Fatalf("%T.SendMail: %v", m, err)
		}
	}
	got := buf.String()
	if strings.Count(got, "email sent") != 2 || !strings.Contains(got, "to=j***@example.com") {
		t.Errorf("log: got %s, want two 'email sent' lines with to=j***@example.com", got)
	}
	if strings.Contains(got, to) {
		t.Errorf("log: got %s, want no raw recipient address", got)
	}
}
