package deadletter

import (
	"errors"
	"time"
)

// ParseTime reads a [Filter] bound (Since, Until) as operators write it in
// the API's query and jobctl's flags: an RFC 3339 time, or a duration back
// from now ("2h" is two hours before now). The error says what is wanted;
// the caller names the field.
func ParseTime(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("must not be a negative duration")
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errors.New(`must be an RFC 3339 time or a duration back from now, like "1h"`)
	}
	return t, nil
}
