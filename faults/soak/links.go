package soak

import (
	"context"
	"fmt"
	"strings"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Links are TCP links through Shopify's toxiproxy, run in this process as
// a library: every client of Redis or PostgreSQL in the soak reaches it
// through one, so the nemesis can add latency and cut connections.
type Links struct {
	srv *toxiproxy.ApiServer

	mu      sync.Mutex
	proxies map[string]*toxiproxy.Proxy
}

// NewLinks returns an empty set of links.
func NewLinks() *Links {
	return &Links{
		srv:     toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		proxies: map[string]*toxiproxy.Proxy{},
	}
}

// Add starts link name: listen (host:port, port 0 for a free one) to
// upstream (host:port). It returns the address it listens on.
func (l *Links) Add(name, listen, upstream string) (string, error) {
	p := toxiproxy.NewProxy(l.srv, name, listen, upstream)
	if err := p.Start(); err != nil {
		return "", fmt.Errorf("link %s: %w", name, err)
	}
	l.mu.Lock()
	l.proxies[name] = p
	l.mu.Unlock()
	return p.Listen, nil
}

func (l *Links) proxy(name string) (*toxiproxy.Proxy, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.proxies[name]
	if !ok {
		return nil, fmt.Errorf("no link %q", name)
	}
	return p, nil
}

// AddLatency adds ms milliseconds (± jitter) to both directions of every
// connection of link name, until Clear.
func (l *Links) AddLatency(name string, ms, jitter int) error {
	p, err := l.proxy(name)
	if err != nil {
		return err
	}
	for _, stream := range []string{"upstream", "downstream"} {
		body := fmt.Sprintf(`{"name":"latency-%s","type":"latency","stream":%q,"toxicity":1,"attributes":{"latency":%d,"jitter":%d}}`, stream, stream, ms, jitter)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			return fmt.Errorf("link %s: add latency: %w", name, err)
		}
	}
	return nil
}

// Clear removes every toxic of link name.
func (l *Links) Clear(name string) error {
	p, err := l.proxy(name)
	if err != nil {
		return err
	}
	p.Toxics.ResetToxics(context.Background())
	return nil
}

// Down closes every connection of link name and refuses new ones until Up.
func (l *Links) Down(name string) error {
	p, err := l.proxy(name)
	if err != nil {
		return err
	}
	p.Stop()
	return nil
}

// Up accepts connections on link name again, on the same address.
func (l *Links) Up(name string) error {
	p, err := l.proxy(name)
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	return nil
}

// Close stops every link.
func (l *Links) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.proxies {
		p.Stop()
	}
}
