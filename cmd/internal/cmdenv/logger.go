package cmdenv

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// NewLogger is a binary's logger at level (LOG_LEVEL: debug, info, warn,
// error; info when empty or unknown). On a terminal (cmd/server -dev in a
// shell, say) it writes readable text lines (slog.TextHandler); anywhere
// else, a pipe, a file or a log collector, JSON lines (slog.JSONHandler).
func NewLogger(w io.Writer, level string) *slog.Logger {
	return newLogger(w, level, IsTerminal(w))
}

func newLogger(w io.Writer, level string, terminal bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: ParseLevel(level)}
	if terminal {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// ParseLevel reads a LOG_LEVEL value; info when it is empty or unknown.
func ParseLevel(level string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(level))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// IsTerminal reports whether w is a file that is a character device other
// than the null device: a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}
