package partner

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestRegistryLimits(t *testing.T) {
	entry := func(extra string) string {
		return `{"partners": {"acme": {"url": "https://a.example/wh", "secret": "` + vectorSecret + `"` + extra + `}}}`
	}
	tests := []struct {
		name    string
		extra   string
		want    Limits
		wantErr string
	}{
		{"defaults", ``, Limits{MaxConcurrency: 4}, ""},
		{"both set", `, "maxConcurrency": 1, "ratePerSecond": 0.5`, Limits{MaxConcurrency: 1, RatePerSecond: 0.5}, ""},
		{"largest", `, "maxConcurrency": 1000`, Limits{MaxConcurrency: 1000}, ""},
		{"zero concurrency", `, "maxConcurrency": 0`, Limits{}, `partner "acme": maxConcurrency: 0, want 1 to 1000`},
		{"too many", `, "maxConcurrency": 1001`, Limits{}, "maxConcurrency: 1001"},
		{"fractional concurrency", `, "maxConcurrency": 1.5`, Limits{}, "maxConcurrency"},
		{"zero rate", `, "ratePerSecond": 0`, Limits{}, `partner "acme": ratePerSecond: 0, want a positive number`},
		{"negative rate", `, "ratePerSecond": -1`, Limits{}, "ratePerSecond: -1"},
		{"rate as string", `, "ratePerSecond": "10"`, Limits{}, "ratePerSecond"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := LoadRegistry(writeRegistry(t, entry(tt.extra)), false)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, ok := reg.Limits("acme")
			if !ok || got != tt.want {
				t.Errorf("got %+v (%v), want %+v", got, ok, tt.want)
			}
		})
	}
}

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		in      string
		want    []time.Duration
		wantErr string
	}{
		{"5m,30m,2h,5h,10h,24h,24h", DefaultRedeliverySchedule, ""},
		{"1s, 2s", []time.Duration{time.Second, 2 * time.Second}, ""},
		{"1s,,2s", nil, `step 2 ""`},
		{"1s,-2s", nil, `step 2 "-2s"`},
		{"tomorrow", nil, `step 1 "tomorrow"`},
	}
	for _, tt := range tests {
		got, err := ParseSchedule(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSchedule(%q): got error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("ParseSchedule(%q): got %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ParseSchedule(%q)[%d]: got %s, want %s", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func TestWatcherReloadsChangesAndKeepsTheLastGoodRegistry(t *testing.T) {
	one := `{"partners": {"acme": {"url": "https://a.example/wh", "secret": "` + vectorSecret + `"}}}`
	two := `{"partners": {"acme": {"url": "https://a.example/wh", "secret": "` + vectorSecret + `"}, "globex": {"url": "https://g.example/wh", "secret": "` + otherSecret + `", "maxConcurrency": 2}}}`
	path := writeRegistry(t, one)
	w, err := NewWatcher(path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen [][]string
	w.OnChange(func(r *Registry) { seen = append(seen, r.Partners()) })

	steps := []struct {
		name        string
		content     string
		wantChanged bool
		wantErr     string
		want        []string
	}{
		{"unchanged file", one, false, "", []string{"acme"}},
		{"partner added", two, true, "", []string{"acme", "globex"}},
		{"broken file keeps the last good registry", `{"partners": {"acme": {"url": "ftp://x"`, false, "previous registry stays in force", []string{"acme", "globex"}},
		{"same broken file is not reported twice", `{"partners": {"acme": {"url": "ftp://x"`, false, "", []string{"acme", "globex"}},
		{"partner removed", one, true, "", []string{"acme"}},
	}
	for _, s := range steps {
		if err := os.WriteFile(path, []byte(s.content), 0o600); err != nil {
			t.Fatal(err)
		}
		changed, err := w.Reload()
		if changed != s.wantChanged {
			t.Errorf("%s: changed %v, want %v", s.name, changed, s.wantChanged)
		}
		if (err == nil) != (s.wantErr == "") || (err != nil && !strings.Contains(err.Error(), s.wantErr)) {
			t.Errorf("%s: error %v, want %q", s.name, err, s.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "whsec_") {
			t.Errorf("%s: error quotes a secret: %v", s.name, err)
		}
		if got := w.Registry().Partners(); strings.Join(got, ",") != strings.Join(s.want, ",") {
			t.Errorf("%s: partners %v, want %v", s.name, got, s.want)
		}
	}
	if len(seen) != 2 || strings.Join(seen[0], ",") != "acme,globex" || strings.Join(seen[1], ",") != "acme" {
		t.Errorf("OnChange saw %v, want [[acme globex] [acme]]", seen)
	}
	if l, _ := w.Registry().Limits("acme"); l.MaxConcurrency != DefaultMaxConcurrency {
		t.Errorf("acme maxConcurrency %d, want the default %d", l.MaxConcurrency, DefaultMaxConcurrency)
	}
}
