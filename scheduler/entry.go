package scheduler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/robfig/cron/v3"
)

// Entry is one periodic job.
type Entry struct {
	// Name identifies the entry in logs and job IDs: 1–64 letters, digits,
	// '-', '_' or '.', unique within a scheduler.
	Name string
	// Cron is a standard five-field cron spec or a descriptor (@hourly,
	// @every 10m), in UTC unless it starts with CRON_TZ=<zone>.
	Cron string
	// Build returns the job for the period starting at period, built by a
	// typed constructor (or tasks.FromJSON) with opts, which carry the
	// period's dedupe key. [Periodic] makes one.
	Build func(period time.Time, opts ...tasks.Option) (*tasks.Task, error)
}

// Periodic is the entry that builds newTask(p) every period of spec, e.g.
//
//	scheduler.Periodic("nightly-audit", "0 3 * * *", tasks.NewAuditLogCreatedTask, p)
//
// The payload is validated when the scheduler is created.
func Periodic[P tasks.Payload](name, spec string, newTask func(P, ...tasks.Option) (*tasks.Task, error), p P) Entry {
	return Entry{Name: name, Cron: spec, Build: func(_ time.Time, opts ...tasks.Option) (*tasks.Task, error) {
		return newTask(p, opts...)
	}}
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// periodKey is the dedupe key of entry name's job for the period at.
func periodKey(name string, at time.Time) string {
	return "sched-" + name + "-" + strconv.FormatInt(at.Unix(), 10)
}

// entry is an Entry whose spec is parsed and whose job was built once.
type entry struct {
	name  string
	sched cron.Schedule
	build func(time.Time, ...tasks.Option) (*tasks.Task, error)
}

// checkEntry parses e's spec and builds its job for the period after now,
// so a bad entry fails at start-up and not at 3 a.m.
func checkEntry(e Entry, now time.Time) (entry, error) {
	if !namePattern.MatchString(e.Name) {
		return entry{}, fmt.Errorf("entry %q: name: must be 1-64 letters, digits, '-', '_' or '.'", e.Name)
	}
	sched, err := parseCron(e.Cron)
	if err != nil {
		return entry{}, fmt.Errorf("entry %q: cron %q: %w", e.Name, e.Cron, err)
	}
	next := sched.Next(now.UTC())
	if next.IsZero() {
		return entry{}, fmt.Errorf("entry %q: cron %q never fires", e.Name, e.Cron)
	}
	if e.Build == nil {
		return entry{}, fmt.Errorf("entry %q: no Build function", e.Name)
	}
	key := periodKey(e.Name, next)
	t, err := e.Build(next, tasks.DedupeKey(key))
	if err != nil {
		return entry{}, fmt.Errorf("entry %q: %w", e.Name, err)
	}
	if t == nil || t.ID != t.Type()+":"+key {
		return entry{}, fmt.Errorf("entry %q: Build must pass its options to the task constructor (the period's dedupe key is missing)", e.Name)
	}
	return entry{name: e.Name, sched: sched, build: e.Build}, nil
}

// parseCron parses spec with robfig/cron's standard parser. An @every
// schedule is aligned to multiples of its delay, so that every process
// computes the same fire times whenever it started.
func parseCron(spec string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, err
	}
	if d, ok := s.(cron.ConstantDelaySchedule); ok {
		return alignedEvery{d: d.Delay}, nil
	}
	return s, nil
}

// alignedEvery fires at every multiple of d since the Unix epoch.
type alignedEvery struct{ d time.Duration }

func (a alignedEvery) Next(t time.Time) time.Time {
	n := t.UnixNano()
	d := a.d.Nanoseconds()
	return time.Unix(0, (n/d+1)*d).In(t.Location())
}

// fileEntry is one entry of the schedule file.
type fileEntry struct {
	Name    string          `json:"name"`
	Cron    string          `json:"cron"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// LoadEntries reads a schedule file (SCHEDULE_FILE):
//
//	{"entries": [{"name": "nightly-audit", "cron": "0 3 * * *", "type": "audit_log_created", "payload": {…}}]}
//
// In a payload, {{period}} stands for the fire time as an ID-safe UTC stamp
// (20261129T030000Z) and {{periodTime}} for it in RFC 3339, so a periodic
// job can carry a fresh eventId each period.
//
// Each payload is decoded strictly and validated as tasks.FromJSON does, and
// each cron spec is parsed. The error lists every bad entry, by name, with
// the bad field; a *payloads.ValidationError is kept in the chain.
func LoadEntries(path string) ([]Entry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedule file: %w", err)
	}
	var f struct {
		Entries []fileEntry `json:"entries"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("schedule file %s: %w", path, err)
	}
	var (
		entries []Entry
		errs    []error
		seen    = map[string]bool{}
		now     = time.Now()
	)
	for i, fe := range f.Entries {
		if fe.Name == "" {
			errs = append(errs, fmt.Errorf("entry %d: name: is required", i+1))
			continue
		}
		if seen[fe.Name] {
			errs = append(errs, fmt.Errorf("entry %q: name: is used twice", fe.Name))
			continue
		}
		seen[fe.Name] = true
		if _, err := tasks.Lookup(fe.Type); err != nil {
			errs = append(errs, fmt.Errorf("entry %q: type: %w", fe.Name, err))
			continue
		}
		typ, raw := fe.Type, []byte(fe.Payload)
		e := Entry{Name: fe.Name, Cron: fe.Cron, Build: func(period time.Time, opts ...tasks.Option) (*tasks.Task, error) {
			return tasks.FromJSON(typ, withPeriod(raw, period), opts...)
		}}
		if _, err := checkEntry(e, now); err != nil {
			errs = append(errs, err)
			continue
		}
		entries = append(entries, e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("schedule file %s: %w", path, err)
	}
	return entries, nil
}

// withPeriod fills the {{period}} and {{periodTime}} placeholders of raw.
func withPeriod(raw []byte, period time.Time) []byte {
	p := period.UTC()
	raw = bytes.ReplaceAll(raw, []byte("{{periodTime}}"), []byte(p.Format(time.RFC3339)))
	return bytes.ReplaceAll(raw, []byte("{{period}}"), []byte(p.Format("20060102T150405Z")))
}
