package jsonl_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/internal/jsonl"
)

func open(t *testing.T, path string) *jsonl.File {
	t.Helper()
	f, err := jsonl.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readNew returns the lines ReadNew passes, under the lock.
func readNew(t *testing.T, f *jsonl.File) []string {
	t.Helper()
	unlock, err := f.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	var got []string
	if err := f.ReadNew(func(line []byte) { got = append(got, string(line)) }); err != nil {
		t.Fatal(err)
	}
	return got
}

// checkFile fails t unless the file at path holds want.
func checkFile(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != want {
		t.Errorf("file: got %q, want %q", got, want)
	}
}

func appendLine(t *testing.T, f *jsonl.File, line string) {
	t.Helper()
	unlock, err := f.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := f.ReadNew(func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	if err := f.Append([]byte(line)); err != nil {
		t.Fatal(err)
	}
}

// Two handles on one file (two processes): each reads exactly what the
// other appended since it last looked, in order, never its own lines twice.
func TestTwoWritersReadEachOthersLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	a, b := open(t, path), open(t, path)
	appendLine(t, a, `{"n":1}`)
	appendLine(t, b, `{"n":2}`) // b first reads line 1
	appendLine(t, a, `{"n":3}`) // a first reads line 2
	if got, want := readNew(t, b), []string{`{"n":3}`}; !slices.Equal(got, want) {
		t.Errorf("b reads: got %q, want %q", got, want)
	}
	if got := readNew(t, a); len(got) != 0 {
		t.Errorf("a reads again: got %q, want nothing", got)
	}
	if got, want := readNew(t, open(t, path)), []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}; !slices.Equal(got, want) {
		t.Errorf("a new reader: got %q, want %q", got, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: got %v, %v; want 0600 (payloads are customer data)", fi.Mode().Perm(), err)
	}
}

// A line cut short by a crash stays (it is handed to the reader, who
// decides whether it decodes) and the next append starts a new line.
func TestTornLastLineIsEndedByTheNextAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	if err := os.WriteFile(path, []byte("{\"n\":1}\n{\"n\":2,\"cut"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := open(t, path)
	if got, want := readNew(t, f), []string{`{"n":1}`, `{"n":2,"cut`}; !slices.Equal(got, want) {
		t.Fatalf("read: got %q, want %q", got, want)
	}
	appendLine(t, f, `{"n":3}`)
	checkFile(t, path, "{\"n\":1}\n{\"n\":2,\"cut\n{\"n\":3}\n")
	if got, want := readNew(t, open(t, path)), []string{`{"n":1}`, `{"n":2,"cut`, `{"n":3}`}; !slices.Equal(got, want) {
		t.Errorf("a new reader: got %q, want %q", got, want)
	}
}

// A file that shrank was not only appended to: an error, never a silent
// re-read from a wrong offset. A file renamed over the path (compaction)
// is reported by Replaced.
func TestShrunkFileIsAnErrorAndReplacedIsSeen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log.jsonl")
	f := open(t, path)
	appendLine(t, f, `{"n":1}`)
	if f.Replaced() {
		t.Fatal("Replaced before any replacement: got true")
	}
	if err := os.Truncate(path, 2); err != nil {
		t.Fatal(err)
	}
	unlock, err := f.Lock()
	if err != nil {
		t.Fatal(err)
	}
	err = f.ReadNew(func([]byte) {})
	unlock()
	if err == nil || !strings.Contains(err.Error(), "shrank") {
		t.Errorf("ReadNew after a truncate: got %v, want an error saying it shrank", err)
	}
	next := filepath.Join(dir, "log.jsonl.new")
	if err := os.WriteFile(next, []byte("{\"n\":9}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	if !f.Replaced() {
		t.Error("Replaced after a rename over the path: got false, want true")
	}
}

// Empty leaves nothing: the next append is the file's first line, also
// after a torn line.
func TestEmptyStartsTheFileAfresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	if err := os.WriteFile(path, []byte("{\"n\":1}\n{\"n\":2,\"cut"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := open(t, path)
	readNew(t, f)
	if err := f.Empty(); err != nil {
		t.Fatal(err)
	}
	appendLine(t, f, `{"n":3}`)
	checkFile(t, path, "{\"n\":3}\n")
}

// TryLock does not wait: a second open file of the path finds the lock
// held until the first lets it go (closing the file lets it go too).
func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.lock")
	f1, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f2, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	unlock, held, err := jsonl.TryLock(f1)
	if err != nil || held {
		t.Fatalf("first: got held %v, %v; want the lock", held, err)
	}
	if _, held, err := jsonl.TryLock(f2); err != nil || !held {
		t.Fatalf("second while the first holds it: got held %v, %v; want held", held, err)
	}
	unlock()
	unlock2, held, err := jsonl.TryLock(f2)
	if err != nil || held {
		t.Fatalf("second after unlock: got held %v, %v; want the lock", held, err)
	}
	unlock2()
	if _, held, _ := jsonl.TryLock(f1); held {
		t.Fatal("first again: got held, want the lock")
	}
	f1.Close()
	if _, held, _ := jsonl.TryLock(f2); held {
		t.Error("after the holder closed its file: got held, want the lock")
	}
}
