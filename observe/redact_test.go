package observe_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/escrowjobs/escrowjobs/observe"
)

// No exported attribute, event or status of a client span holds the
// token a partner put in its URL's query, the URL's password or an
// e-mail address: not for a request answered, nor for one refused (its
// error names the whole URL).
func TestClientSpansHoldNoQueryOrUserinfo(t *testing.T) {
	const token, password = "tok_s3cret_9f8e", "pw_hunter22"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close() // nothing listens there: the request fails
	for _, tc := range []struct {
		name, url string
		wantErr   bool
	}{
		{"answered", srv.URL + "/hooks?token=" + token + "&to=jane.doe@example.com", false},
		{"answered, userinfo", strings.Replace(srv.URL, "://", "://acme:"+password+"@", 1) + "/hooks?token=" + token, false},
		{"refused", "http://acme:" + password + "@" + refused + "/hooks?token=" + token + "&to=jane.doe@example.com", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			defer tp.Shutdown(context.Background())
			client := &http.Client{Transport: observe.Transport(nil, tp, "webhook")}
			req, err := http.NewRequest(http.MethodPost, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := client.Do(req)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("request: got error %v, want an error: %v", err, tc.wantErr)
			}
			if err == nil {
				res.Body.Close()
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("spans: got %d, want 1", len(spans))
			}
			s := spans[0]
			var texts []string
			sawURL := false
			for _, a := range s.Attributes {
				texts = append(texts, string(a.Key)+"="+a.Value.Emit())
				if a.Key == "url.full" {
					sawURL = true
					if want := "/hooks?xxxxx"; !strings.HasSuffix(a.Value.AsString(), want) {
						t.Errorf("url.full: got %q, want it to end in %q", a.Value.AsString(), want)
					}
				}
			}
			for _, e := range s.Events {
				for _, a := range e.Attributes {
					texts = append(texts, e.Name+": "+string(a.Key)+"="+a.Value.Emit())
				}
			}
			texts = append(texts, "status: "+s.Status.Description)
			if !sawURL {
				t.Errorf("attributes: got %q, want url.full among them", texts)
			}
			if tc.wantErr && s.Status.Description == "" {
				t.Errorf("status: got no description, want the (redacted) error")
			}
			for _, text := range texts {
				for _, secret := range []string{token, password, "jane.doe"} {
					if strings.Contains(text, secret) {
						t.Errorf("span: got %q, want no %q", text, secret)
					}
				}
			}
		})
	}
}
