package peertest

import (
	"os"
	"path/filepath"
	"testing"
)

// TempFile writes content to a file called name in the test's temporary
// directory (readable by the owner only) and returns its path.
func TempFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
