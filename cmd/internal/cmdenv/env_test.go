package cmdenv

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVariablesNameTheVariable(t *testing.T) {
	env := map[string]string{
		"N": "12", "N_BAD": "12x", "N_HIGH": "99",
		"D": "250ms", "D_BAD": "-1s",
		"B": "true", "B_BAD": "yes please",
	}
	getenv := func(k string) string { return env[k] }
	var errs []error
	if got := Int(getenv, "N", 1, 1, 50, &errs); got != 12 {
		t.Errorf("Int N: got %d, want 12", got)
	}
	if got := Int(getenv, "UNSET", 7, 1, 50, &errs); got != 7 {
		t.Errorf("Int UNSET: got %d, want the default 7", got)
	}
	if got := Duration(getenv, "D", time.Second, &errs); got != 250*time.Millisecond {
		t.Errorf("Duration D: got %v, want 250ms", got)
	}
	if got := Bool(getenv, "B", &errs); !got {
		t.Errorf("Bool B: got false, want true")
	}
	if got := Or(getenv("UNSET"), "def"); got != "def" {
		t.Errorf("Or: got %q, want def", got)
	}
	if len(errs) != 0 {
		t.Fatalf("good values: got errors %v, want none", errs)
	}
	Int(getenv, "N_BAD", 1, 1, 50, &errs)
	Int(getenv, "N_HIGH", 1, 1, 50, &errs)
	Duration(getenv, "D_BAD", time.Second, &errs)
	Bool(getenv, "B_BAD", &errs)
	want := []string{`N_BAD="12x"`, `N_HIGH="99": want a whole number from 1 to 50`, `D_BAD="-1s"`, `B_BAD="yes please": want true or false`}
	if len(errs) != len(want) {
		t.Fatalf("bad values: got %d errors %v, want %d", len(errs), errs, len(want))
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("error %d: got %q, want it to contain %q", i, errs[i], w)
		}
	}
	if err := errors.Join(errs...); err == nil {
		t.Error("errors.Join: got nil")
	}
}
