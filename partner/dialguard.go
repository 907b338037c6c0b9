package partner

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// ErrRefusedAddress is returned (wrapped) by a Sender that refused to
// connect to a loopback, private, link-local, CGNAT, multicast, unspecified
// or reserved address because private networks are not allowed. It is a
// permanent failure.
var ErrRefusedAddress = errors.New("webhook: refused to connect to a non-public address")

// refuseNonPublic is a net.Dialer Control function. It runs on the resolved
// address just before connect, so neither a hostname nor DNS rebinding can
// reach an address it refuses.
func refuseNonPublic(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s %s: unparsable address", ErrRefusedAddress, network, address)
	}
	if !publicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrRefusedAddress, ap.Addr())
	}
	return nil
}

// publicAddr reports whether a is a globally routable unicast address.
//
// IPv6: only global unicast (2000::/3) outside the IANA IPv6
// special-purpose registry passes. The one embedding form that is itself
// global, NAT64's well-known prefix 64:ff9b::/96, is judged by the IPv4
// address it carries; the other embedding and translating forms (IPv4-
// compatible ::a.b.c.d, SIIT ::ffff:0:a.b.c.d, local-use NAT64
// 64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32) are refused whatever
// they carry. An IPv4-mapped address (::ffff:a.b.c.d) is dialled as IPv4
// and judged as one.
func publicAddr(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	if a.Is6() && nat64WellKnown.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !a.IsValid() {
		return false
	}
	if a.Is4() {
		return publicIPv4(a)
	}
	if !globalUnicast6.Contains(a) {
		return false
	}
	for _, p := range specialIPv6 {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

func publicIPv4(a netip.Addr) bool {
	if a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a.IsMulticast() {
		return false
	}
	for _, p := range specialIPv4 {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// The prefixes below are fixed tables, never changed after start-up.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052, embeds an IPv4 address
	globalUnicast6 = netip.MustParsePrefix("2000::/3")     // RFC 4291 global unicast
	specialIPv6    = mustPrefixes(
		"2001::/23",     // IETF protocol assignments: Teredo 2001::/32, benchmarking, AMT, ORCHID, AS112, DRIP
		"2001:db8::/32", // documentation
		"2002::/16",     // 6to4, embeds an IPv4 address (deprecated, RFC 7526)
		"3fff::/20",     // documentation (RFC 9637)
	)
	// IPv4 special-purpose addresses netip does not classify.
	specialIPv4 = mustPrefixes(
		"0.0.0.0/8",       // "this network"; 0.0.0.0 reaches the local host
		"100.64.0.0/10",   // carrier-grade NAT
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"192.88.99.0/24",  // deprecated 6to4 relay anycast
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"240.0.0.0/4",     // reserved, and 255.255.255.255 broadcast
	)
)

func mustPrefixes(ps ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}
