package escrowjobs_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
)

// The user documents: the README, the pages under docs/ and the changelog.
// TestReadme checks what of them can be checked offline:
//
//   - every ```go block (README and docs/) is a complete file that compiles
//     against this module (go vet in a scratch module that replaces
//     github.com/escrowjobs/escrowjobs with this directory); a block that is
//     not meant to compile alone is fenced ```go snippet;
//   - every ```sh / ```bash block runs only known commands, never sudo;
//     the packages and directories given to go (./cmd/server, ./faults/redis/)
//     and the scripts it runs (scripts/test) exist; jobctl is given commands
//     its help lists;
//   - every ```json block is valid JSON;
//   - every Test…, Fuzz… and Benchmark… name the pages cite exists in a
//     _test.go file (the benchmarks log, being history, is exempt);
//   - every relative link points at a file that exists, and its #anchor at a
//     heading of that page;
//   - no document cites specification sections, issue numbers or work
//     sessions, and the README and docs/benchmarks.md stay under 15 KB.
func TestReadme(t *testing.T) {
	docs := userDocs(t)
	var goBlocks []block
	for _, d := range docs {
		checkReferences(t, d)
		checkLinks(t, d, docs)
		for _, b := range d.blocks {
			switch b.lang {
			case "go":
				if !slices.Contains(strings.Fields(b.info), "snippet") {
					goBlocks = append(goBlocks, b)
				}
			case "sh", "bash", "shell":
				checkShell(t, b)
			case "json":
				if !json.Valid([]byte(b.text)) {
					t.Errorf("%s: the json block is not valid JSON", b.where())
				}
			}
		}
		if d.name != "docs/benchmarks-log.md" {
			checkTestNames(t, d)
		}
	}
	for _, name := range []string{"README.md", "docs/benchmarks.md"} {
		if st, err := os.Stat(name); err != nil {
			t.Error(err)
		} else if st.Size() > 15000 {
			t.Errorf("%s is %d bytes; keep it under 15 KB and move detail to a page under docs/", name, st.Size())
		}
	}

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); compileGoBlocks(t, goBlocks) }()
	go func() { defer wg.Done(); checkJobctlCommands(t) }()
	wg.Wait()
}

// doc is one user document and its fenced code blocks.
type doc struct {
	name     string // relative to the repository, slash-separated
	text     string
	prose    string // text without the code blocks
	blocks   []block
	headings map[string]bool // anchors of its headings
}

// block is one fenced code block.
type block struct {
	doc  string
	line int    // line of the opening fence
	lang string // first word of the info string
	info string // the whole info string
	text string // contents, with the fence's indentation removed
}

func (b block) where() string { return fmt.Sprintf("%s:%d", b.doc, b.line) }

func userDocs(t *testing.T) []doc {
	t.Helper()
	names := []string{"README.md", "CHANGELOG.md"}
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	names = append(names, pages...)
	var docs []doc
	for _, name := range names {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, parseDoc(filepath.ToSlash(name), string(raw)))
	}
	return docs
}

var fence = regexp.MustCompile("^(\\s*)(```+)\\s*(.*)$")

func parseDoc(name, text string) doc {
	d := doc{name: name, text: text, headings: map[string]bool{}}
	var prose strings.Builder
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		m := fence.FindStringSubmatch(lines[i])
		if m == nil {
			prose.WriteString(lines[i] + "\n")
			if h, ok := strings.CutPrefix(lines[i], "#"); ok {
				d.headings[anchor(strings.TrimLeft(h, "#"))] = true
			}
			continue
		}
		indent, ticks, info := m[1], m[2], strings.TrimSpace(m[3])
		b := block{doc: name, line: i + 1, info: info}
		b.lang, _, _ = strings.Cut(info, " ")
		var body []string
		for i++; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) == ticks {
				break
			}
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		b.text = strings.Join(body, "\n") + "\n"
		d.blocks = append(d.blocks, b)
	}
	d.prose = prose.String()
	return d
}

// anchor is the fragment GitHub gives a heading: lower case, spaces to
// hyphens, punctuation dropped.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(heading) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(unicode.ToLower(r))
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// Internal references a reader cannot follow.
var internalRef = regexp.MustCompile(`\bSPEC\b|§\s*\d|[Ii]ssue #\d|\bPR #\d|(?:^|[^-])#\d+ (?:refactor|merge)|\b[Ss]ession[ -]\d|\b[Ss]essions? (?:one|two|three|four)\b`)

func checkReferences(t *testing.T, d doc) {
	for i, line := range strings.Split(d.text, "\n") {
		if m := internalRef.FindString(line); m != "" {
			t.Errorf("%s:%d: %q cites an internal reference (a specification section, an issue or a work session); say what it means instead", d.name, i+1, m)
		}
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

func checkLinks(t *testing.T, d doc, docs []doc) {
	byName := map[string]doc{}
	for _, o := range docs {
		byName[o.name] = o
	}
	for _, m := range mdLink.FindAllStringSubmatch(d.prose, -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		path, frag, _ := strings.Cut(target, "#")
		name := d.name
		if path != "" {
			name = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(d.name), path)))
			if _, err := os.Stat(name); err != nil {
				t.Errorf("%s: link %q: %s does not exist", d.name, target, name)
				continue
			}
		}
		if frag == "" || !strings.HasSuffix(name, ".md") {
			continue
		}
		o, ok := byName[name]
		if !ok {
			raw, err := os.ReadFile(name)
			if err != nil {
				t.Errorf("%s: link %q: %v", d.name, target, err)
				continue
			}
			o = parseDoc(name, string(raw))
		}
		if !o.headings[frag] {
			t.Errorf("%s: link %q: %s has no heading with the anchor #%s", d.name, target, name, frag)
		}
	}
}

var citedTest = regexp.MustCompile(`\b((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)`)

var (
	testFuncsOnce sync.Once
	testFuncs     map[string]bool
)

// definedTests is every Test, Fuzz and Benchmark function of the module.
func definedTests(t *testing.T) map[string]bool {
	testFuncsOnce.Do(func() {
		testFuncs = map[string]bool{}
		decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)\(`)
		err := filepath.WalkDir(".", func(path string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && (strings.HasPrefix(e.Name(), ".") && path != "." || e.Name() == "testdata") {
				return filepath.SkipDir
			}
			if !strings.HasSuffix(path, "_test.go") {
				return nil
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range decl.FindAllSubmatch(raw, -1) {
				testFuncs[string(m[1])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	return testFuncs
}

func checkTestNames(t *testing.T, d doc) {
	defined := definedTests(t)
	seen := map[string]bool{}
	for _, m := range citedTest.FindAllStringSubmatch(d.text, -1) {
		name := m[1]
		if seen[name] || defined[name] {
			continue
		}
		seen[name] = true
		t.Errorf("%s cites %s, which no _test.go file defines", d.name, name)
	}
}

// Commands a shell block may run. A new one is added here on purpose.
var knownCommands = map[string]bool{
	"apt-get": true, "service": true, "runuser": true, "su": true, "redis-server": true, "redis-cli": true,
	"psql": true, "createdb": true, "curl": true, "openssl": true, "go": true, "jobctl": true,
	"export": true, "cd": true, "mkdir": true, "cat": true, "echo": true, "printf": true, "ls": true,
	"head": true, "tail": true, "grep": true, "kill": true, "sleep": true, "test": true,
}

var (
	envAssign = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)
	heredoc   = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_]+)['"]?`)
	subshell  = regexp.MustCompile(`\$\(([^()]*)\)`)
	quoted    = regexp.MustCompile(`'[^']*'|"[^"]*"`)
	cmdSplit  = regexp.MustCompile(`&&|\|\||[;|&]`)
)

// shellCommands splits a line into its simple commands: those of each
// $( ), then the line's own, split at ; | & && ||, quoted words kept whole.
func shellCommands(line string) []string {
	var cmds []string
	for _, m := range subshell.FindAllStringSubmatch(line, -1) {
		cmds = append(cmds, shellCommands(m[1])...)
	}
	line = subshell.ReplaceAllString(line, "X")
	line = quoted.ReplaceAllString(line, "Q")
	return append(cmds, cmdSplit.Split(line, -1)...)
}

// jobctlUses collects every jobctl invocation the blocks show, for
// checkJobctlCommands: the words after "jobctl".
var jobctlUses struct {
	sync.Mutex
	uses []jobctlUse
}

type jobctlUse struct {
	where string
	args  []string
}

func checkShell(t *testing.T, b block) {
	lines := strings.Split(strings.ReplaceAll(b.text, "\\\n", " "), "\n")
	for i := 0; i < len(lines); i++ {
		line := stripComment(lines[i])
		where := fmt.Sprintf("%s (line %d of the block at %s)", b.doc, i+1, b.where())
		if m := heredoc.FindStringSubmatch(line); m != nil {
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != m[1]; i++ {
			}
		}
		for _, part := range shellCommands(line) {
			fields := strings.Fields(part)
			for len(fields) > 0 && envAssign.MatchString(fields[0]) {
				fields = fields[1:]
			}
			if len(fields) == 0 {
				continue
			}
			if slices.Contains(fields, "sudo") {
				t.Errorf("%s: sudo: the blocks run as root on a fresh Debian machine, where sudo is absent", where)
			}
			cmd := fields[0]
			switch {
			case strings.HasPrefix(cmd, "scripts/") || strings.HasPrefix(cmd, "./scripts/"):
				if st, err := os.Stat(cmd); err != nil || st.IsDir() {
					t.Errorf("%s: %s does not exist", where, cmd)
				}
			case !knownCommands[cmd]:
				t.Errorf("%s: unknown command %q (add it to knownCommands in readme_test.go if it is right)", where, cmd)
			case cmd == "go":
				checkGoCommand(t, where, fields[1:])
			case cmd == "jobctl":
				jobctlUses.Lock()
				jobctlUses.uses = append(jobctlUses.uses, jobctlUse{where, fields[1:]})
				jobctlUses.Unlock()
			}
		}
	}
}

// stripComment cuts a shell comment: a # at the start of a word, outside
// quotes.
func stripComment(line string) string {
	var quote rune
	prev := ' '
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && unicode.IsSpace(prev):
			return line[:i]
		}
		prev = r
	}
	return line
}

// checkGoCommand checks the package and directory arguments of a go
// command: ./cmd/server, ./faults/redis/, ./... and . must exist.
func checkGoCommand(t *testing.T, where string, args []string) {
	if len(args) == 0 {
		t.Errorf("%s: go without a subcommand", where)
		return
	}
	for i, a := range args[1:] {
		if a != "." && !strings.HasPrefix(a, "./") {
			continue
		}
		dir := strings.TrimSuffix(strings.TrimSuffix(a, "..."), "/")
		if dir == "" || dir == "." {
			continue
		}
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() {
			t.Errorf("%s: go %s %s: no such package directory", where, args[0], a)
			continue
		}
		if args[0] == "run" && dir == "./cmd/jobctl" {
			jobctlUses.Lock()
			jobctlUses.uses = append(jobctlUses.uses, jobctlUse{where, args[i+2:]})
			jobctlUses.Unlock()
			return
		}
		if args[0] == "run" {
			return // the rest are the program's arguments
		}
	}
}

// checkJobctlCommands checks every jobctl invocation against the commands
// jobctl's help lists ("dlq list", "status <id>", …), read from its source.
func checkJobctlCommands(t *testing.T) {
	jobctlUses.Lock()
	uses := jobctlUses.uses
	jobctlUses.Unlock()
	if len(uses) == 0 {
		return
	}
	files, err := filepath.Glob("cmd/jobctl/*.go")
	if err != nil {
		t.Error(err)
		return
	}
	var help string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
			return
		}
		if _, after, ok := strings.Cut(string(raw), "\nCommands:\n"); ok {
			help, _, _ = strings.Cut(after, "\n\n")
			break
		}
	}
	if help == "" {
		t.Errorf("cmd/jobctl: no help text with a Commands: section to check the documented commands against")
		return
	}
	// Command lines of the help: two spaces, a command, maybe a subcommand.
	line := regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?\b`)
	subs := map[string]map[string]bool{}
	for _, m := range line.FindAllStringSubmatch(help, -1) {
		if subs[m[1]] == nil {
			subs[m[1]] = map[string]bool{}
		}
		if m[2] != "" {
			subs[m[1]][m[2]] = true
		}
	}
	for _, u := range uses {
		args := slices.DeleteFunc(slices.Clone(u.args), func(a string) bool { return strings.HasPrefix(a, "-") })
		if len(args) == 0 {
			continue
		}
		known, ok := subs[args[0]]
		if !ok {
			t.Errorf("%s: jobctl has no command %q (its help lists %v)", u.where, args[0], slices.Sorted(mapsKeys(subs)))
			continue
		}
		if len(known) > 0 && (len(args) < 2 || !known[args[1]]) {
			t.Errorf("%s: jobctl %s wants one of %v", u.where, args[0], slices.Sorted(mapsKeys(known)))
		}
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// A block that must fail: it proves the compile check is not vacuous.
const brokenBlock = `package broken

func f() int { return undefinedIdentifier }
`

// compileGoBlocks writes each go block as a package of a scratch module
// that requires this one (replaced by this directory, with its go.mod's
// requirements and go.sum), runs go vet over them, and reports each error
// at its block. A deliberately broken package must fail too.
func compileGoBlocks(t *testing.T, blocks []block) {
	repo, err := os.Getwd()
	if err != nil {
		t.Error(err)
		return
	}
	modFile, err := os.ReadFile("go.mod")
	if err != nil {
		t.Error(err)
		return
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Error(err)
		return
	}
	dir := t.TempDir()
	var mod strings.Builder
	mod.WriteString("module readmecheck\n\n")
	for _, l := range strings.Split(string(modFile), "\n") {
		if strings.HasPrefix(l, "module ") || strings.HasPrefix(l, "replace ") {
			continue
		}
		mod.WriteString(l + "\n")
	}
	fmt.Fprintf(&mod, "\nrequire github.com/escrowjobs/escrowjobs v0.0.0\n\nreplace github.com/escrowjobs/escrowjobs => %s\n", repo)
	write := func(name, text string) bool {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Error(err)
			return false
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Error(err)
			return false
		}
		return true
	}
	if !write("go.mod", mod.String()) || !write("go.sum", string(sum)) || !write("broken/broken.go", brokenBlock) {
		return
	}
	pkgOf := map[string]block{}
	for i, b := range blocks {
		if !strings.HasPrefix(strings.TrimSpace(stripGoComments(b.text)), "package ") {
			t.Errorf("%s: a go block is a complete file starting with its package clause (fence it ```go snippet if it is not meant to compile alone)", b.where())
			continue
		}
		pkg := fmt.Sprintf("block%02d", i+1)
		pkgOf[pkg] = b
		if !write(pkg+"/block.go", b.text) {
			return
		}
	}
	cmd := exec.Command("go", "vet", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("go vet passed a block with an undefined identifier: the check is vacuous")
		return
	}
	if !strings.Contains(string(out), "undefinedIdentifier") {
		t.Errorf("go vet did not report the broken block:\n%s", out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "#") {
			continue // the package header go vet prints before its errors
		}
		for pkg, b := range pkgOf {
			if strings.Contains(l, pkg+"/") || strings.Contains(l, "readmecheck/"+pkg) {
				t.Errorf("%s: the go block does not compile: %s", b.where(), strings.TrimSpace(l))
			}
		}
		if strings.Contains(l, "go: ") || strings.Contains(l, "cannot find module") {
			t.Errorf("go vet in the scratch module: %s", strings.TrimSpace(l))
		}
	}
}

// stripGoComments drops leading // comment lines.
func stripGoComments(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "//") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
