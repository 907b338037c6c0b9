package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/handlers"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

func TestTypedDecodesValidatesAndCalls(t *testing.T) {
	var got payloads.SendRefundEmail
	h := handlers.Typed(func(_ context.Context, p payloads.SendRefundEmail) error { got = p; return nil })
	cases := []struct {
		name, body string
		wantErr    string // "" for success
	}{
		{"valid, unknown field ignored", `{"transactionId":"t1","recipientEmail":"a@example.com","amount":5,"currency":"USD","newField":1}`, ""},
		{"wrong type", `{"transactionId":"t1","recipientEmail":"a@example.com","amount":"5","currency":"USD"}`, "amount: must be a JSON number"},
		{"invalid", `{"transactionId":"t1","recipientEmail":"a@example.com","amount":0,"currency":"USD"}`, "amount: must be greater than 0"},
		{"not JSON", `{{`, "is not valid JSON"},
		{"too big", `{"reason":"` + strings.Repeat("x", handlers.MaxPayloadBytes) + `"}`, "the limit is 65536"},
	}
	for _, c := range cases {
		got = payloads.SendRefundEmail{}
		err := h.ProcessTask(context.Background(), asynq.NewTask("send_refund_email", []byte(c.body)))
		switch {
		case c.wantErr == "" && (err != nil || got.Amount != 5):
			t.Errorf("%s: got (%v, %+v), want the payload delivered", c.name, err, got)
		case c.wantErr != "" && (err == nil || !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: got %v, want a permanent error containing %q", c.name, err, c.wantErr)
		}
	}
}

func TestServeMuxLogsMaskedAndArchivesUnknownTypes(t *testing.T) {
	var logs bytes.Buffer
	a := escrowtest.NewAdapters()
	a.FailWith(func(string, int) error { return errors.New("smtp: mailbox jane.doe@example.com is full") })
	mux, err := handlers.NewServeMux(a.Deps(a, slog.New(slog.NewJSONHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"transactionId":"t1","recipientEmail":"jane.doe@example.com","amount":5,"currency":"USD"}`)
	if err := mux.ProcessTask(context.Background(), asynq.NewTask("send_release_email", body)); err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Errorf("adapter failure: got %v, want a transient error", err)
	}
	if err := mux.ProcessTask(context.Background(), asynq.NewTask("launch_rockets", []byte(`{}`))); !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("unknown type: got %v, want a permanent error", err)
	}
	if strings.Contains(logs.String(), "jane.doe@") || !strings.Contains(logs.String(), "j***@example.com") {
		t.Errorf("log: got %s, want the address masked", logs.String())
	}
	for _, attr := range []string{`"task_type"`, `"task_id"`, `"queue"`, `"attempt"`} {
		if !strings.Contains(logs.String(), attr) {
			t.Errorf("log lacks %s: %s", attr, logs.String())
		}
	}
	if _, err := handlers.NewServeMux(handlers.Deps{Logger: slog.Default()}); err == nil || !strings.Contains(err.Error(), "Mailer") {
		t.Errorf("missing dependencies: got %v, want an error naming them", err)
	}
}

func TestFanOutHasItsOwnDedupeKeys(t *testing.T) {
	n := handlers.NewNotify(escrowtest.NewAdapters(), nil)
	p := payloads.NotifyDisputeResolved{DisputeID: "d1", TransactionID: "t1", Resolution: "split", BuyerEmail: "b@example.com", SellerEmail: "s@example.com", PartnerID: "acme"}
	ts, err := n.FanOut(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"send_dispute_email:dispute-d1-resolved-" + payloads.RecipientHash("b@example.com"),
		"send_dispute_email:dispute-d1-resolved-" + payloads.RecipientHash("s@example.com"),
		"webhook_escrow_status_changed:event-dispute-d1-resolved",
	}
	if len(ts) != len(want) {
		t.Fatalf("got %d jobs, want %d", len(ts), len(want))
	}
	for i, task := range ts {
		if task.ID != want[i] {
			t.Errorf("job %d: got ID %q, want %q", i, task.ID, want[i])
		}
	}
	p.PartnerID = ""
	if ts, _ := n.FanOut(p); len(ts) != 2 {
		t.Errorf("without a partner: got %d jobs, want the 2 e-mails", len(ts))
	}
	// A duplicate from an earlier run is success; any other failure retries.
	if err := handlers.NewNotify(dupEnqueuer{}, nil).Resolved(context.Background(), p); err != nil {
		t.Errorf("all duplicates: got %v, want nil", err)
	}
}

type dupEnqueuer struct{}

func (dupEnqueuer) Enqueue(_ context.Context, t *tasks.Task) (string, error) {
	return t.ID, tasks.ErrDuplicate
}
