package cmdenv

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Or is v, or def when v is empty.
func Or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Int reads variable name as a whole number from lo to hi; def when it is
// unset. A bad value appends an error naming the variable to errs and
// returns def.
func Int(getenv func(string) string, name string, def, lo, hi int, errs *[]error) int {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		*errs = append(*errs, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, v, lo, hi))
		return def
	}
	return n
}

// Duration reads variable name as a positive Go duration; def when it is
// unset. A bad value appends an error naming the variable to errs and
// returns def.
func Duration(getenv func(string) string, name string, def time.Duration, errs *[]error) time.Duration {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		*errs = append(*errs, fmt.Errorf("%s=%q: want a positive duration such as 10ms or 25s", name, v))
		return def
	}
	return d
}

// Bool reads variable name as true or false (strconv.ParseBool); false when
// it is unset. A bad value appends an error naming the variable to errs.
func Bool(getenv func(string) string, name string, errs *[]error) bool {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s=%q: want true or false", name, v))
	}
	return b
}
