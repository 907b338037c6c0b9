package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/devmode"
	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/peertest"
)

// hold takes a free loopback port and keeps it until the test ends: a
// default address someone else already uses.
func hold(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

var printedMonitor = regexp.MustCompile(`monitor: (http://\S+)/monitor/`)

// -dev with its default monitor and metrics addresses taken (the test holds
// the ports it passes as the defaults, standing in for 8080 and 9090) takes
// a free port for each, prints both URLs and that the defaults were taken;
// with -demo the demo's partners are listed by GET /api/v1/partners.
func TestDevTakesFreePortsWhenTheDefaultsAreTakenAndShowsItsPartners(t *testing.T) {
	monitorDefault, metricsDefault := hold(t), hold(t)
	f := flags{dev: true, demo: true, devRedisAddr: "127.0.0.1:0", monitorAddr: monitorDefault, monitorDefault: monitorDefault, metricsDefault: metricsDefault}
	var out, logs peertest.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	escrowtest.Start(t, "runDev", 15*time.Second, func(ctx context.Context) error { return runDev(ctx, f, envOf(nil), &out, log) })
	escrowtest.Eventually(t, "the banner", 15*time.Second, func() bool { return strings.Contains(out.String(), "export REDIS_URL=") })
	banner := out.String()

	for _, tc := range []struct {
		name, def string
		printed   *regexp.Regexp
		path      string
	}{
		{"monitor", monitorDefault, printedMonitor, "/healthz"},
		{"metrics", metricsDefault, printedMetrics, "/metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.printed.FindStringSubmatch(banner)
			if m == nil {
				t.Fatalf("got no %s URL in the banner:\n%s", tc.name, banner)
			}
			if got := strings.TrimPrefix(m[1], "http://"); got == tc.def {
				t.Errorf("got %s on %s, the taken default; want a free port", tc.name, got)
			}
			if want := tc.def + " is taken: the " + tc.name; !strings.Contains(banner, want) {
				t.Errorf("banner: got\n%s\nwant it to say %q", banner, want)
			}
			if code, body := httpGet(t, m[1]+tc.path); code != http.StatusOK {
				t.Errorf("GET %s%s: got %d %.200s, want 200", m[1], tc.path, code, body)
			}
		})
	}

	base := printedMonitor.FindStringSubmatch(banner)[1]
	code, body := httpGet(t, base+"/api/v1/partners")
	var list []partner.Status
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/v1/partners: got %d %.200s (%v), want 200 and a list", code, body, err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	if want := slices.Sorted(slices.Values(devmode.DemoPartners)); !slices.Equal(ids, want) {
		t.Errorf("got partners %q, want the demo's %q", ids, want)
	}
}

// An address that was chosen (-monitor-addr) and is taken stays an error
// naming it: only the default moves.
func TestDevMonitorAddrTakenIsAnError(t *testing.T) {
	taken := hold(t)
	f := flags{dev: true, devRedisAddr: "127.0.0.1:0", monitorAddr: taken, monitorDefault: DefaultDevMonitorAddr, metricsDefault: "127.0.0.1:0"}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := runDev(ctx, f, envOf(nil), &peertest.Buffer{}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), taken) {
		t.Errorf("got %v, want an error naming %s", err, taken)
	}
}
