package webhook

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly keeps the package partners import free of the
// service's dependencies: every package it depends on, directly or not, must
// be in the standard library.
func TestStandardLibraryOnly(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found on PATH: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	var outside []string
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/escrowjobs/escrowjobs/webhook" {
			outside = append(outside, p)
		}
	}
	if len(outside) > 0 {
		t.Errorf("package webhook depends on %d packages outside the standard library, want none: %s", len(outside), strings.Join(outside, " "))
	}
}
