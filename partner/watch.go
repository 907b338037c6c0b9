package partner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReloadInterval is how often a Watcher looks at the registry file.
const DefaultReloadInterval = 2 * time.Second

// Watcher holds the partner registry of a file and re-reads it when the
// file changes (polled: its SHA-256 is compared every interval) or when
// Reload is called (SIGHUP). A file that no longer validates is refused
// with an error log and the previous registry stays in force. It is safe
// for concurrent use.
type Watcher struct {
	path      string
	allowHTTP bool
	log       *slog.Logger
	cur       atomic.Pointer[Registry]

	mu       sync.Mutex // serialises reloads
	sum      [sha256.Size]byte
	onChange []func(*Registry)
}

// NewWatcher loads the registry at path; the error is LoadRegistry's.
// log may be nil.
func NewWatcher(path string, allowHTTP bool, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{path: path, allowHTTP: allowHTTP, log: log}
	reg, data, err := readRegistry(path, allowHTTP)
	if err != nil {
		return nil, err
	}
	w.cur.Store(reg)
	w.sum = sha256.Sum256(data)
	return w, nil
}

// Registry returns the registry in force.
func (w *Watcher) Registry() *Registry { return w.cur.Load() }

// OnChange registers f to run after every reload that changed the file
// (and once at Run's start, with the registry in force).
func (w *Watcher) OnChange(f func(*Registry)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onChange = append(w.onChange, f)
}

// Reload re-reads the file now. It reports whether the registry changed;
// the error says why a changed file was refused.
func (w *Watcher) Reload() (bool, error) {
	w.mu.Lock()
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.mu.Unlock()
		return false, fmt.Errorf("webhook registry: %w", err)
	}
	sum := sha256.Sum256(data)
	if bytes.Equal(sum[:], w.sum[:]) {
		w.mu.Unlock()
		return false, nil
	}
	reg, err := parseRegistry(data, w.allowHTTP)
	if err != nil {
		w.sum = sum // refuse this content once, not every poll
		w.mu.Unlock()
		return false, fmt.Errorf("webhook registry %s: %w (the previous registry stays in force)", w.path, err)
	}
	w.sum = sum
	w.cur.Store(reg)
	fs := append([]func(*Registry){}, w.onChange...)
	w.mu.Unlock()
	w.log.Info("webhook registry reloaded", "path", w.path, "partners", len(reg.partners))
	for _, f := range fs {
		f(reg)
	}
	return true, nil
}

// Run polls the file every interval (DefaultReloadInterval when ≤ 0) and
// reloads on every value received from hup (SIGHUP; may be nil), until ctx
// is done.
func (w *Watcher) Run(ctx context.Context, interval time.Duration, hup <-chan os.Signal) {
	if interval <= 0 {
		interval = DefaultReloadInterval
	}
	w.mu.Lock()
	fs := append([]func(*Registry){}, w.onChange...)
	w.mu.Unlock()
	for _, f := range fs {
		f(w.Registry())
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-hup:
			w.log.Info("webhook registry: reload requested (SIGHUP)", "path", w.path)
		}
		if _, err := w.Reload(); err != nil {
			w.log.Error("webhook registry reload refused", "error", err)
		}
	}
}
