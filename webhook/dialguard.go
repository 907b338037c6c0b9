package webhook

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
func publicAddr(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	// The well-known NAT64 prefix embeds an IPv4 address: judge that one.
	if a.Is6() && netip.MustParsePrefix("64:ff9b::/96").Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() {
		return false
	}
	// Ranges netip does not classify. A dial is rare next to the request it
	// carries, so parsing them each time costs nothing worth a global.
	for _, p := range [...]string{
		"0.0.0.0/8",       // "this network"; 0.0.0.0 reaches the local host
		"100.64.0.0/10",   // carrier-grade NAT
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"240.0.0.0/4",     // reserved, and 255.255.255.255 broadcast
		"100::/64",        // discard-only
		"2001:db8::/32",   // documentation
		"fec0::/10",       // deprecated site-local
	} {
		if netip.MustParsePrefix(p).Contains(a) {
			return false
		}
	}
	return true
}
