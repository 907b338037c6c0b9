package partner

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/webhook"
)

// writeRegistry writes a registry file into the test's temp dir.
func writeRegistry(t *testing.T, content string) string {
	t.Helper()
	return peertest.TempFile(t, "endpoints.json", content)
}

func TestLoadRegistry(t *testing.T) {
	path := writeRegistry(t, `{"partners": {
		"acme":     {"url": "https://hooks.acme.example/escrow?tenant=7", "secret": "`+vectorSecret+`"},
		"globex":   {"url": "https://globex.example/wh", "secrets": ["`+vectorSecret+`", "`+otherSecret+`"]},
		"initech.eu": {"url": "https://initech.example/wh", "secret": "`+otherSecret+`", "secrets": ["`+vectorSecret+`", "`+otherSecret+`"]}
	}}`)
	reg, err := LoadRegistry(path, false)
	if err != nil {
		t.Fatalf("LoadRegistry: got %v, want nil", err)
	}
	if got, want := reg.Partners(), []string{"acme", "globex", "initech.eu"}; !slices.Equal(got, want) {
		t.Errorf("Partners: got %v, want %v", got, want)
	}
	tests := []struct {
		id          string
		url         string
		wantSecrets []string // the keys the partner signs with, in order
	}{
		{"acme", "https://hooks.acme.example/escrow?tenant=7", []string{vectorSecret}},
		{"globex", "https://globex.example/wh", []string{vectorSecret, otherSecret}},
		{"initech.eu", "https://initech.example/wh", []string{otherSecret, vectorSecret}}, // the duplicate counted once
	}
	at := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	for _, tc := range tests {
		p, ok := reg.lookup(tc.id)
		if !ok {
			t.Errorf("lookup(%q): got not found, want found", tc.id)
			continue
		}
		if got := p.url.String(); got != tc.url {
			t.Errorf("%s url: got %q, want %q", tc.id, got, tc.url)
		}
		h := http.Header{}
		if err := p.signer.Sign(h, "msg_1", at, body); err != nil {
			t.Fatalf("%s: Sign: %v", tc.id, err)
		}
		var want []string
		for _, secret := range tc.wantSecrets {
			sig, err := webhook.Sign(secret, "msg_1", at, body)
			if err != nil {
				t.Fatalf("webhook.Sign: %v", err)
			}
			want = append(want, sig)
		}
		if got := strings.Fields(h.Get(webhook.HeaderSignature)); !slices.Equal(got, want) {
			t.Errorf("%s signatures: got %d, want %d, one per key in order", tc.id, len(got), len(want))
		}
	}
	if _, ok := reg.lookup("ACME"); ok {
		t.Errorf("lookup(ACME): got found, want partner IDs case-sensitive")
	}
}

func TestLoadRegistryErrors(t *testing.T) {
	// A 16-byte key: valid base64, too short for the specification.
	const shortSecret = "whsec_c2hvcnQtc2hvcnQtc2hvcg=="
	entry := func(url, secretJSON string) string {
		return `{"partners": {"acme": {"url": "` + url + `", ` + secretJSON + `}}}`
	}
	good := `"secret": "` + vectorSecret + `"`
	tests := []struct {
		name      string
		content   string
		allowHTTP bool
		want      []string // all must appear in the error
		secret    string   // must not appear in the error
	}{
		{"not JSON", `{"partners": {"acme": {"url": "https://a.example", "secret": "whsec_abc\q"}}}`, false, []string{"invalid JSON at byte"}, `whsec_abc`},
		{"truncated", `{"partners": {"acme": {"url": "https://a.exa`, false, []string{"invalid JSON"}, ""},
		{"empty file", ``, false, []string{"invalid JSON"}, ""},
		{"trailing data", entry("https://a.example", good) + `{}`, false, []string{"data after"}, ""},
		{"secret of the wrong type", `{"partners": {"acme": {"url": "https://a.example", "secret": 42}}}`, false, []string{`partner "acme"`, "secret: want string"}, ""},
		{"unknown field", `{"partners": {"acme": {"url": "https://a.example", "secert": "x", "secret": "` + vectorSecret + `"}}}`, false, []string{`"secert"`}, vectorSecret},
		{"no partners", `{"partners": {}}`, false, []string{"no partners"}, ""},
		{"bad partner id", `{"partners": {"acme corp": {"url": "https://a.example", "secret": "` + vectorSecret + `"}}}`, false, []string{`"acme corp"`, "id"}, vectorSecret},
		{"missing url", `{"partners": {"acme": {"secret": "` + vectorSecret + `"}}}`, false, []string{`"acme"`, "url", "missing"}, vectorSecret},
		{"bad url", entry("https://a.example/%zz", good), false, []string{`"acme"`, "url", "not a valid URL"}, vectorSecret},
		{"relative url", entry("/hooks", good), false, []string{`"acme"`, "url", "https"}, vectorSecret},
		{"ftp url", entry("ftp://a.example/h", good), false, []string{`"acme"`, "url", "https"}, vectorSecret},
		{"http url when not allowed", entry("http://a.example/h", good), false, []string{`"acme"`, "url", "must be https"}, vectorSecret},
		{"url without host", entry("https:///h", good), false, []string{`"acme"`, "url", "host"}, vectorSecret},
		{"url with credentials", entry("https://user:pw@a.example/h", good), false, []string{`"acme"`, "url", "credentials"}, "pw"},
		{"missing secret", entry("https://a.example", `"secrets": []`), false, []string{`"acme"`, "secret", "missing"}, ""},
		{"secret without prefix", entry("https://a.example", `"secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"`), false, []string{`"acme"`, "secret:", "whsec_"}, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"secret not base64", entry("https://a.example", `"secret": "whsec_Mf!Q9r8GKYqrTwjUPD8ILPZIo2LaLaSw"`), false, []string{`"acme"`, "secret:", "base64"}, "Mf!Q9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"secret too short", entry("https://a.example", `"secret": "`+shortSecret+`"`), false, []string{`"acme"`, "secret:", "16 bytes"}, shortSecret[6:]},
		{"bad second rotation secret", entry("https://a.example", `"secrets": ["`+vectorSecret+`", "whsec_oops!`+otherSecret[6:]+`"]`), false, []string{`"acme"`, "secrets[1]", "base64"}, otherSecret[6:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRegistry(t, tc.content)
			reg, err := LoadRegistry(path, tc.allowHTTP)
			if err == nil {
				t.Fatalf("got registry %v, want an error", reg)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("got %q, want it to name the file", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("got %q, want it to contain %q", msg, w)
				}
			}
			if tc.secret != "" && strings.Contains(msg, tc.secret) {
				t.Errorf("got %q, want it without the secret", msg)
			}
			// No error ever shows any part of a well-formed secret.
			if strings.Contains(msg, "MfKQ9r8G") || strings.Contains(msg, otherSecret[6:14]) {
				t.Errorf("got %q, want no secret material", msg)
			}
		})
	}
}

func TestLoadRegistryHTTP(t *testing.T) {
	path := writeRegistry(t, `{"partners": {"acme": {"url": "http://127.0.0.1:9/h", "secret": "`+vectorSecret+`"}}}`)
	if _, err := LoadRegistry(path, false); err == nil || !strings.Contains(err.Error(), "must be https") {
		t.Errorf("http URL, allowHTTP=false: got %v, want a must-be-https error", err)
	}
	if _, err := LoadRegistry(path, true); err != nil {
		t.Errorf("http URL, allowHTTP=true: got %v, want nil", err)
	}
}

func TestLoadRegistryMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.json")
	_, err := LoadRegistry(path, false)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v, want an error naming %s", err, path)
	}
}

func TestRegistryNeverFormatsSecrets(t *testing.T) {
	reg, err := parseRegistry([]byte(`{"partners": {"acme": {"url": "https://a.example/h", "secrets": ["`+vectorSecret+`", "`+otherSecret+`"]}}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := decodeSecret(vectorSecret)
	for _, v := range []any{reg, *reg, reg.partners["acme"].signer} {
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			got := fmt.Sprintf(format, v)
			if strings.Contains(got, "MfKQ") || strings.Contains(got, string(k)) || strings.Contains(got, fmt.Sprint(k)[1:8]) {
				t.Errorf("%s of %T: got %q, want the keys redacted", format, v, got)
			}
		}
	}
}

// "ordered" is a boolean per partner, off when absent; a value of another
// type is refused with an error naming the partner and the field.
func TestLoadRegistryOrdered(t *testing.T) {
	for _, tc := range []struct {
		name, ordered string
		want          bool
		wantErr       string
	}{
		{"absent", ``, false, ""},
		{"true", `, "ordered": true`, true, ""},
		{"false", `, "ordered": false`, false, ""},
		{"null", `, "ordered": null`, false, ""},
		{"string", `, "ordered": "yes"`, false, `partner "acme": invalid JSON: ordered: want bool, found string`},
		{"number", `, "ordered": 1`, false, `partner "acme": invalid JSON: ordered: want bool, found number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRegistry(t, `{"partners": {"acme": {"url": "https://hooks.acme.example/escrow", "secret": "`+vectorSecret+`"`+tc.ordered+`},
				"globex": {"url": "https://globex.example/wh", "secret": "`+otherSecret+`"}}}`)
			reg, err := LoadRegistry(path, false)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := reg.Ordered("acme"); got != tc.want {
				t.Errorf("Ordered(acme): got %v, want %v", got, tc.want)
			}
			var want []string
			if tc.want {
				want = []string{"acme"}
			}
			if got := reg.OrderedPartners(); !slices.Equal(got, want) || reg.Ordered("globex") {
				t.Errorf("OrderedPartners: got %v, want %v", got, want)
			}
		})
	}
}
