package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// registrySecret is a well-formed whsec_ secret (32 bytes) for the test
// registries.
const registrySecret = "whsec_cGYtd2ViaG9vay1zaWduaW5nLWtleS0zMi1ieXRlcyE="

// registry records the partners ids as the workers do on a registry
// load, those of ordered ordered.
func (f *fixture) registry(t *testing.T, ids []string, ordered ...string) {
	t.Helper()
	partners := map[string]any{}
	for _, id := range ids {
		partners[id] = map[string]any{"url": "https://hooks." + id + ".example/escrow", "secret": registrySecret, "ordered": strings.Contains(" "+strings.Join(ordered, " ")+" ", " "+id+" ")}
	}
	b, _ := json.Marshal(map[string]any{"partners": partners})
	path := filepath.Join(t.TempDir(), "partners.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	reg, err := partner.LoadRegistry(path, false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := partner.NewState(partner.StateConfig{Redis: f.client.Redis()})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := partner.NewRedelivery(partner.RedeliveryConfig{Redis: f.client.Redis(), State: st, DeadLetters: noRedeliveries{}})
	if err != nil {
		t.Fatal(err)
	}
	rd.RegistryChanged(context.Background(), reg)
}

// noRedeliveries is a partner.DeadLetters with nothing to redeliver.
type noRedeliveries struct{}

func (noRedeliveries) ListOpen(context.Context, string, string) ([]partner.DeadLetter, error) {
	return nil, nil
}
func (noRedeliveries) Requeue(context.Context, string, string, string) error { return nil }

// statusEvent enqueues a status event of escrow esc-1 to partner p.
func (f *fixture) statusEvent(t *testing.T, event, p string) string {
	t.Helper()
	task, err := tasks.NewWebhookEscrowStatusChangedTask(payloads.WebhookEscrowStatusChanged{
		EventID: event, PartnerID: p, TransactionID: "esc-1", PreviousStatus: payloads.StatusFunded,
		Status: payloads.StatusReleased, OccurredAt: "2026-11-30T02:00:00Z",
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.client.Enqueue(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// An ordered partner is shown as such by GET /api/v1/partners and the
// console; the dead letter of an event with later events of its escrow
// behind it says how many wait for it (API and console), and one of an
// unordered partner says nothing.
func TestOrderedPartnerAndTheEventsWaitingBehindADeadLetter(t *testing.T) {
	f := setup(t)
	f.registry(t, []string{"acme", "globex"}, "globex")
	head := f.archiveWebhook(t, "evt-g1", "globex", errors.New("webhook evt-g1: partner globex answered 503"))
	f.statusEvent(t, "evt-g2", "globex")
	f.statusEvent(t, "evt-g3", "globex")
	other := f.archiveWebhook(t, "evt-a1", "acme", errors.New("webhook evt-a1: partner acme answered 503"))
	f.statusEvent(t, "evt-a2", "acme")

	a := f.api(t, http.MethodGet, "/api/v1/partners", "")
	var list []partner.Status
	a.json(t, &list)
	if len(list) != 2 || list[0].Ordered || !list[1].Ordered || list[1].WaitingInOrder != 0 {
		t.Errorf("partners: got %s, want acme not ordered and globex ordered, nothing waiting in order yet", a.body)
	}
	if !strings.Contains(string(a.body), `"waitingInOrder":0`) {
		t.Errorf("partners: got %s, want waitingInOrder", a.body)
	}
	for _, tc := range []struct {
		id   string
		want int
	}{{head, 2}, {other, 0}} {
		a := f.api(t, http.MethodGet, "/api/v1/dead-letters/"+tc.id, "")
		var got struct {
			ID            string `json:"id"`
			WaitingBehind int    `json:"waitingBehind"`
		}
		a.json(t, &got)
		if got.ID != tc.id || got.WaitingBehind != tc.want {
			t.Errorf("dead letter %s: got %s, want waitingBehind %d", tc.id, a.body, tc.want)
		}
	}
	p := f.get(t, detailPath(head), http.StatusOK)
	if b := text(p.body); !strings.Contains(b, "2 later events of this escrow wait for it") {
		t.Errorf("the dead letter's page: %.3000s", b)
	}
	p = f.get(t, "/console/partners", http.StatusOK)
	if b := text(p.body); !strings.Contains(b, "Waiting in order") || !strings.Contains(b, "yes") {
		t.Errorf("the partners page: %.3000s", b)
	}
}
