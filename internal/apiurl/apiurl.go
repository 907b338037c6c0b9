// Package apiurl checks the base URL of a keyed HTTP API (Resend, Stripe).
// Every request to it carries the API key, so it must be https; plain http
// is allowed only to a loopback test peer.
package apiurl

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Parse parses raw, the value of the variable name (e.g. STRIPE_API_BASE);
// empty is def, the API's own URL, which an error shows as an example. It
// returns the URL if it is https with a host, or http to a loopback host.
func Parse(name, raw, def string) (*url.URL, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%s %q: want an http(s) URL such as %s", name, raw, def)
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%s %s: want https (plain http only for a loopback test peer such as http://127.0.0.1:port)", name, u.Redacted())
	}
	return u, nil
}

// loopbackHost reports whether host (from a URL, without port) is a
// loopback address or the name localhost.
func loopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
