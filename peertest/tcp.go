package peertest

import (
	"net"
	"sync"
	"testing"
)

// ServeTCP listens on a free loopback port and runs handle, in a goroutine
// of its own, for each connection: a fake peer speaking a protocol by hand,
// or (a handle that returns at once) one that accepts and never answers.
// handle may close its connection; at cleanup the listener and every
// connection still open are closed. It returns the address, host:port.
func ServeTCP(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go handle(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
