package partner

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPublicAddr(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"172.32.0.1", true},
		{"100.128.0.1", true},
		{"2606:4700:4700::1111", true},
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"127.0.0.1", false},
		{"127.8.9.10", false},
		{"::1", false},
		{"10.0.0.1", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"169.254.0.1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"::", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"ff02::1", false},
		{"ff05::2", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"198.18.0.1", false},
		{"192.0.2.1", false},
		{"2001:db8::1", false},
		{"::ffff:127.0.0.1", false}, // IPv4-mapped loopback
		{"::ffff:10.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"64:ff9b::a00:1", false},  // NAT64 of 10.0.0.1
		{"64:ff9b::7f00:1", false}, // NAT64 of 127.0.0.1
	}
	for _, tc := range tests {
		a, err := netip.ParseAddr(tc.addr)
		if err != nil {
			t.Fatalf("parse %s: %v", tc.addr, err)
		}
		if got := publicAddr(a); got != tc.want {
			t.Errorf("publicAddr(%s): got %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// TestRefuseBeforeConnect dials with the guard: a refused address fails in
// the Control hook, before connect(2), so no packet leaves the host.
func TestRefuseBeforeConnect(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:443", "169.254.169.254:80", "127.0.0.1:9", "[::1]:9", "[::ffff:10.0.0.1]:443"} {
		d := net.Dialer{Control: refuseNonPublic, Timeout: 2 * time.Second}
		conn, err := d.DialContext(context.Background(), "tcp", addr)
		if err == nil {
			conn.Close()
			t.Errorf("dial %s: got a connection, want refused", addr)
			continue
		}
		// Only the Control hook, run before connect(2), returns
		// ErrRefusedAddress: the refusal came before any packet.
		if !errors.Is(err, ErrRefusedAddress) {
			t.Errorf("dial %s: got %v, want ErrRefusedAddress", addr, err)
		}
	}
}

func TestSendRefusesPrivateTargets(t *testing.T) {
	// A real loopback listener that counts connections: the refused
	// loopback targets point at it, and it must see none.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	targets := []struct{ id, url string }{
		{"loopback", "https://127.0.0.1:" + strconv.Itoa(port) + "/h"},
		{"private", "https://10.0.0.1/h"},
		{"metadata", "http://169.254.169.254/latest/meta-data/"},
		{"ipv6-loopback", "https://[::1]:" + strconv.Itoa(port) + "/h"},
		{"localhost", "https://localhost:" + strconv.Itoa(port) + "/h"},
		{"cgnat", "https://100.64.0.1/h"},
		{"mapped", "https://[::ffff:192.168.0.1]/h"},
	}
	entries := make([]string, len(targets))
	for i, tg := range targets {
		entries[i] = `"` + tg.id + `": {"url": "` + tg.url + `", "secret": "` + vectorSecret + `"}`
	}
	content := `{"partners": {` + strings.Join(entries, ", ") + `}}`
	reg, err := LoadRegistry(writeRegistry(t, content), true)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSender(reg, SenderOptions{Timeout: 2 * time.Second})
	for _, tg := range targets {
		id := tg.id
		t.Run(id, func(t *testing.T) {
			err := s.Send(context.Background(), Delivery{ID: "evt_ssrf", PartnerID: id, Body: []byte(testBody)})
			if got := classify(err); got != permanent {
				t.Fatalf("got %s (%v), want permanent", got, err)
			}
			if !errors.Is(err, ErrRefusedAddress) {
				t.Errorf("got %v, want ErrRefusedAddress (refused at dial time)", err)
			}
			if !strings.Contains(err.Error(), id) {
				t.Errorf("got %q, want the partner named", err)
			}
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("loopback listener: got %d connections, want 0", n)
	}
}
