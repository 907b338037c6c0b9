package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// checkDevRedisAddr refuses a -dev-redis-addr that is not loopback: the
// embedded store has no password, and anyone who reaches it can read every
// payload (customer e-mail addresses) and enqueue jobs.
func checkDevRedisAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-dev-redis-addr %q: want host:port on a loopback address, e.g. 127.0.0.1:6379", addr)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	return fmt.Errorf("-dev-redis-addr %q: the embedded store has no password, so it listens on a loopback address only (127.0.0.1:port, [::1]:port or localhost:port)", addr)
}
