package monitor

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"strings"
)

// secretEqual compares in constant time, whatever the lengths: both sides
// are hashed first, so neither the content nor the length leaks.
func secretEqual(given, want string) bool {
	g := sha256.Sum256([]byte(given))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// requireBearer guards h with "Authorization: Bearer <token>". An empty
// token (loopback mode only; New checks) lets every request through.
// A client that sent too many wrong tokens is answered 429 (throttle).
func requireBearer(token string, throttle *loginThrottle, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if throttle.refuse(w, r) {
			return
		}
		given, ok := bearer(r.Header.Get("Authorization"))
		if !ok || !secretEqual(given, token) {
			if ok {
				throttle.fail(r, "api")
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="escrowjobs"`)
			writeError(w, http.StatusUnauthorized, codeUnauthorized, "missing or wrong bearer token (Authorization: Bearer $JOB_PROCESSOR_SECRET_TOKEN)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// requireBasic guards h with HTTP Basic auth. Empty credentials (loopback
// mode only) let every request through. A client that sent too many wrong
// credentials is answered 429 (throttle).
func requireBasic(user, pass string, throttle *loginThrottle, h http.Handler) http.Handler {
	if user == "" && pass == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if throttle.refuse(w, r) {
			return
		}
		u, p, ok := r.BasicAuth()
		// Both compares always run, so the time says nothing about which failed.
		userOK, passOK := secretEqual(u, user), secretEqual(p, pass)
		if !ok || !userOK || !passOK {
			if ok {
				throttle.fail(r, "ui")
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="escrowjobs monitor", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, codeUnauthorized, "log in with MONITOR_USERNAME and MONITOR_PASSWORD")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackOnly refuses requests that do not come from a loopback address,
// or whose Host is not a loopback name (a DNS-rebinding page).
func loopbackOnly(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopbackAddr(r.RemoteAddr) || !isLoopbackHost(r.Host) {
			log.Warn("monitor: refused a non-loopback request in loopback mode", "remote", r.RemoteAddr, "path", maskPath(r.URL))
			writeError(w, http.StatusForbidden, codeForbidden, "this monitor serves loopback clients only")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func isLoopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
