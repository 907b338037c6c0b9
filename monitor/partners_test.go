package monitor_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/partner"
)

// archiveWebhook enqueues a webhook for partner and lets a worker fail it
// permanently with lastErr (fail).
func (f *fixture) archiveWebhook(t *testing.T, event, partner string, lastErr error) string {
	t.Helper()
	id := f.statusEvent(t, event, partner)
	f.fail(t, lastErr, id)
	return id
}

func TestPartnersListEnableDisable(t *testing.T) {
	f := setup(t)
	rc := f.inspector.Redis()
	st, err := partner.NewState(partner.StateConfig{Redis: rc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	long := strings.Repeat("p", 64)
	if err := st.Known(ctx, []string{"zeta", "acme", long}); err != nil {
		t.Fatal(err)
	}
	if err := st.Disable(ctx, "zeta", "test"); err != nil {
		t.Fatal(err)
	}
	job := f.archiveWebhook(t, "evt-zeta-1", "zeta", fmt.Errorf("webhook evt-zeta-1: partner zeta: %w", partner.ErrEndpointDisabled))

	if a := f.do(t, request{method: http.MethodGet, path: "/api/v1/partners"}); a.status != http.StatusUnauthorized {
		t.Errorf("without a token: got %d, want 401", a.status)
	}
	a := f.api(t, http.MethodGet, "/api/v1/partners", "")
	if a.status != http.StatusOK {
		t.Fatalf("GET /api/v1/partners: got %d %s", a.status, a.body)
	}
	var list []partner.Status
	a.json(t, &list)
	want := []struct{ id, state string }{{"acme", "healthy"}, {long, "healthy"}, {"zeta", "disabled"}}
	if len(list) != len(want) {
		t.Fatalf("got %d partners %s, want %d", len(list), a.body, len(want))
	}
	for i, w := range want {
		if list[i].ID != w.id || list[i].State != w.state {
			t.Errorf("partner %d: got %s %s, want %s %s", i, list[i].ID, list[i].State, w.id, w.state)
		}
	}
	for _, field := range []string{`"consecutiveFailures":0`, `"lastSuccessAt":null`, `"waiting":0`} {
		if !strings.Contains(string(a.body), field) {
			t.Errorf("answer %s: want it to contain %s", a.body, field)
		}
	}

	m := f.do(t, request{method: http.MethodGet, path: "/metrics"})
	for _, metric := range []string{
		`escrowjobs_partner_circuit_state{partner="zeta",state="disabled"} 1`,
		`escrowjobs_partner_circuit_state{partner="acme",state="healthy"} 1`,
		`escrowjobs_partner_deliveries_total{partner="acme"} 0`,
		`escrowjobs_partner_failures_total{partner="acme"} 0`,
		`escrowjobs_partner_delivery_duration_seconds_bucket{partner="acme",le="0.005"} 0`,
	} {
		if !strings.Contains(string(m.body), metric) {
			t.Errorf("/metrics lacks %s:\n%s", metric, grep(string(m.body), "escrowjobs_partner"))
		}
	}

	a = f.api(t, http.MethodPost, "/api/v1/partners/zeta/enable", "")
	if a.status != http.StatusOK {
		t.Fatalf("enable: got %d %s", a.status, a.body)
	}
	var res struct {
		ID          string `json:"id"`
		State       string `json:"state"`
		Redelivered int    `json:"redelivered"`
	}
	a.json(t, &res)
	if res.ID != "zeta" || res.State != "healthy" || res.Redelivered != 1 {
		t.Errorf("enable: got %+v, want zeta healthy with 1 redelivered", res)
	}
	if j := f.waitState(t, job, "pending"); j.Attempts != 0 {
		t.Errorf("redelivered job: %d attempts, want a fresh budget", j.Attempts)
	}
	if !strings.Contains(f.logs.String(), `"actor":"api"`) {
		t.Errorf("the enable is not logged with actor api")
	}

	a = f.api(t, http.MethodPost, "/api/v1/partners/acme/disable", `{"reason":"maintenance"}`)
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `"state":"disabled"`) {
		t.Errorf("disable: got %d %s, want 200 and state disabled", a.status, a.body)
	}

	for _, c := range []struct {
		path string
		want int
	}{
		{"/api/v1/partners/nobody/enable", http.StatusNotFound},
		{"/api/v1/partners/bad%21id/enable", http.StatusBadRequest},
		{"/api/v1/partners/" + strings.Repeat("p", 65) + "/enable", http.StatusBadRequest},
	} {
		if a := f.api(t, http.MethodPost, c.path, ""); a.status != c.want {
			t.Errorf("POST %s: got %d %s, want %d", c.path, a.status, a.body, c.want)
		} else {
			a.apiError(t)
		}
	}
}
