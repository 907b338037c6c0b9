package httpserve_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/httpserve"
)

// start serves h on a fresh loopback listener and returns its URL and the
// channel that receives Serve's result.
func start(ctx context.Context, t *testing.T, h http.Handler, grace time.Duration) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- httpserve.Serve(ctx, httpserve.Server(h), ln, grace) }()
	return "http://" + ln.Addr().String(), done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10 s of the cancel")
		return nil
	}
}

func TestServerHasTheLimits(t *testing.T) {
	h := http.NotFoundHandler()
	srv := httpserve.Server(h)
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"ReadHeaderTimeout", srv.ReadHeaderTimeout, 5 * time.Second},
		{"ReadTimeout", srv.ReadTimeout, 15 * time.Second},
		{"WriteTimeout", srv.WriteTimeout, 30 * time.Second},
		{"IdleTimeout", srv.IdleTimeout, 60 * time.Second},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, c.got, c.want)
		}
	}
	if srv.Handler == nil {
		t.Error("Handler: got nil, want h")
	}
}

func TestServeAnswersUntilCanceledThenReturnsNil(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	url, done := start(ctx, t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), 5*time.Second)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, want := string(body), "ok"; got != want {
		t.Errorf("body: got %q, want %q", got, want)
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Errorf("after cancel: got %v, want nil", err)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("after Serve returned: got an answer, want the listener closed")
	}
}

func TestServeReportsShutdownPastGrace(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	url, done := start(ctx, t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(entered)
		<-release
	}), 50*time.Millisecond)
	go func() {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	cancel()
	err := wait(t, done)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "shutdown: ") {
		t.Errorf("a request outlasting the grace: got %v, want shutdown: %v", err, context.DeadlineExceeded)
	}
}

func TestServeReportsAFailedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = httpserve.Serve(t.Context(), &http.Server{ReadHeaderTimeout: time.Second}, ln, time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "serve on "+addr+": ") {
		t.Errorf("a closed listener: got %v, want serve on %s: …", err, addr)
	}
}
