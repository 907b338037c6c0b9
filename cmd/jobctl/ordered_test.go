package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// noRedeliveries is a partner.DeadLetters with nothing to redeliver.
type noRedeliveries struct{}

func (noRedeliveries) ListOpen(context.Context, string, string) ([]partner.DeadLetter, error) {
	return nil, nil
}
func (noRedeliveries) Requeue(context.Context, string, string, string) error { return nil }

// partners list says which partner is ordered and how many of its events
// wait in order; dlq show says how many later events wait for the dead
// letter of an ordered partner's event.
func TestPartnersListAndDeadLetterShowOrdering(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	opt, err := asynq.ParseRedisURI(f.url)
	if err != nil {
		t.Fatal(err)
	}
	rc := opt.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	const secret = "whsec_cGYtd2ViaG9vay1zaWduaW5nLWtleS0zMi1ieXRlcyE="
	path := filepath.Join(t.TempDir(), "partners.json")
	if err := os.WriteFile(path, []byte(`{"partners": {"acme": {"url": "https://hooks.acme.example/e", "secret": "`+secret+`"},
		"globex": {"url": "https://hooks.globex.example/e", "secret": "`+secret+`", "ordered": true}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, err := partner.LoadRegistry(path, false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := partner.NewState(partner.StateConfig{Redis: rc})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := partner.NewRedelivery(partner.RedeliveryConfig{Redis: rc, State: st, DeadLetters: noRedeliveries{}})
	if err != nil {
		t.Fatal(err)
	}
	rd.RegistryChanged(ctx, reg)

	client := tasks.NewClient(opt)
	defer client.Close()
	event := func(id string) string {
		task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
			EventID: id, PartnerID: "globex", TransactionID: "esc-9", PreviousStatus: payloads.StatusFunded,
			Status: payloads.StatusReleased, OccurredAt: "2026-11-30T02:00:00Z",
		})
		if err != nil {
			t.Fatal(err)
		}
		jobID, err := client.Enqueue(ctx, task)
		if err != nil {
			t.Fatal(err)
		}
		return jobID
	}
	head := event("evt-g1")
	f.archive(head)
	event("evt-g2")

	r := f.run("partners", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.Contains(lines[0], "ORDERED") || !strings.Contains(lines[0], "WAITING IN ORDER") ||
		!strings.Contains(lines[1], "no") || !strings.Contains(lines[2], "yes") {
		t.Errorf("partners list: exit %d, got\n%s\nwant ORDERED columns, acme no, globex yes", r.code, r.stdout)
	}
	r = f.run("dlq", "show", head)
	if r.code != 0 || !strings.Contains(r.stdout, "waiting behind it: 1 later events of its escrow") {
		t.Errorf("dlq show: exit %d, got\n%s\nwant the event waiting behind it", r.code, r.stdout)
	}
	r = f.run("--json", "dlq", "show", head)
	var shown struct {
		WaitingBehind int `json:"waitingBehind"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || shown.WaitingBehind != 1 {
		t.Errorf("dlq show --json: got %s (%v), want waitingBehind 1", r.stdout, err)
	}
}
