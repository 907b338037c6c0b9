package partner

import (
	"net/netip"
	"testing"
)

// TestPublicAddrIPv6EmbeddingAndSpecialRanges: only global unicast
// (2000::/3) outside the IANA IPv6 special-purpose registry passes; forms
// that embed or translate an IPv4 address are judged by it (NAT64's
// well-known prefix) or refused (the rest).
func TestPublicAddrIPv6EmbeddingAndSpecialRanges(t *testing.T) {
	tests := []struct {
		addr string
		want bool
		why  string
	}{
		// legitimate public addresses
		{"2606:4700:4700::1111", true, "Cloudflare DNS"},
		{"2001:4860:4860::8888", true, "Google DNS (2001:4860::/32 is outside 2001::/23)"},
		{"2620:fe::fe", true, "Quad9"},
		{"2a00:1450:4001:81c::200e", true, "a RIPE allocation"},
		{"2400:cb00::1", true, "an APNIC allocation"},
		{"2620:4f:8000::1", true, "AS112 direct delegation, globally reachable"},
		{"3ffe:ffff::1", true, "old 6bone space, returned to the global pool"},
		{"64:ff9b::808:808", true, "NAT64 well-known prefix of 8.8.8.8"},
		{"64:ff9b::102:304", true, "NAT64 well-known prefix of 1.2.3.4"},
		{"8.8.8.8", true, "public IPv4"},
		{"::ffff:8.8.8.8", true, "IPv4-mapped public IPv4 (dialled as IPv4)"},

		// NAT64 / translation forms
		{"64:ff9b::a00:1", false, "NAT64 WKP of 10.0.0.1"},
		{"64:ff9b::7f00:1", false, "NAT64 WKP of 127.0.0.1"},
		{"64:ff9b::a9fe:a9fe", false, "NAT64 WKP of 169.254.169.254"},
		{"64:ff9b::6440:1", false, "NAT64 WKP of 100.64.0.1 (CGNAT)"},
		{"64:ff9b:1::a00:1", false, "local-use NAT64 64:ff9b:1::/48"},
		{"64:ff9b:1:ffff::808:808", false, "local-use NAT64 even with a public IPv4"},
		{"64:ff9b::1:a00:1", false, "inside 64:ff9b::/64 but outside the /96"},
		{"::7f00:1", false, "IPv4-compatible ::127.0.0.1"},
		{"::a00:1", false, "IPv4-compatible ::10.0.0.1"},
		{"::808:808", false, "IPv4-compatible ::8.8.8.8 (deprecated form)"},
		{"::ffff:0:7f00:1", false, "IPv4-translated ::ffff:0:127.0.0.1 (SIIT)"},
		{"::ffff:0:a00:1", false, "IPv4-translated ::ffff:0:10.0.0.1"},
		{"::ffff:0:808:808", false, "IPv4-translated, public IPv4: not global unicast"},
		{"::ffff:127.0.0.1", false, "IPv4-mapped loopback"},
		{"::ffff:a9fe:a9fe", false, "IPv4-mapped 169.254.169.254"},

		// 6to4 and Teredo embed IPv4 addresses
		{"2002:7f00:1::1", false, "6to4 of 127.0.0.1"},
		{"2002:a00:1::1", false, "6to4 of 10.0.0.1"},
		{"2002:a9fe:a9fe::1", false, "6to4 of 169.254.169.254"},
		{"2002:808:808::1", false, "6to4 (deprecated, RFC 7526) even of a public IPv4"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false, "Teredo"},
		{"2001::1", false, "Teredo prefix"},
		{"2001:0:53aa:64c:0:0:f5ff:fffe", false, "Teredo with client 10.0.0.1 obfuscated"},

		// the rest of the IPv6 special-purpose registry
		{"2001:1::1", false, "2001::/23 IETF protocol assignments"},
		{"2001:2::1", false, "benchmarking 2001:2::/48"},
		{"2001:3::1", false, "AMT 2001:3::/32 (inside 2001::/23)"},
		{"2001:10::1", false, "ORCHID"},
		{"2001:20::1", false, "ORCHIDv2"},
		{"2001:30::1", false, "drone remote ID"},
		{"2001:1ff:ffff::1", false, "end of 2001::/23"},
		{"2001:db8::1", false, "documentation"},
		{"2001:db8:ffff::1", false, "documentation"},
		{"3fff::1", false, "documentation 3fff::/20"},
		{"3fff:fff:ffff::1", false, "end of 3fff::/20"},
		{"5f00::1", false, "SRv6 SIDs 5f00::/16"},
		{"5f00:ffff::1", false, "SRv6 SIDs"},
		{"100::1", false, "discard-only 100::/64"},
		{"100:0:0:1::1", false, "dummy prefix 100:0:0:1::/64"},
		{"fc00::1", false, "unique local"},
		{"fd00::1", false, "unique local"},
		{"fe80::1", false, "link-local"},
		{"fec0::1", false, "site-local"},
		{"ff0e::1", false, "global multicast"},
		{"::", false, "unspecified"},
		{"::1", false, "loopback"},
		{"4000::1", false, "not yet allocated, outside 2000::/3"},
		{"1000::1", false, "outside 2000::/3"},
		{"e000::1", false, "outside 2000::/3"},

		// IPv4 special-purpose addresses not classified by netip
		{"192.0.0.1", false, "IETF protocol assignments"},
		{"192.88.99.1", false, "deprecated 6to4 relay anycast"},
		{"198.18.0.1", false, "benchmarking"},
		{"100.64.0.1", false, "CGNAT"},
		{"0.0.0.0", false, "this host"},
	}
	for _, tc := range tests {
		a, err := netip.ParseAddr(tc.addr)
		if err != nil {
			t.Fatalf("parse %s: %v", tc.addr, err)
		}
		if got := publicAddr(a); got != tc.want {
			t.Errorf("publicAddr(%s) [%s]: got %v, want %v", tc.addr, tc.why, got, tc.want)
		}
	}
}
