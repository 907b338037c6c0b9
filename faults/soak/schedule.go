package soak

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The faults the nemesis injects.
const (
	SIGKILL  Kind = "sigkill"  // a worker process killed, restarted after Pause
	SIGTERM  Kind = "sigterm"  // a worker process stopped, restarted after Pause
	Failover Kind = "failover" // the Redis master SIGKILLed; Sentinel promotes the replica; the old master comes back after Pause
	SIGSTOP  Kind = "sigstop"  // a Redis node (Target 0: the master, 1: the replica) paused for Dur
	Postgres Kind = "postgres" // PostgreSQL restarted (Target 0: fast shutdown, 1: immediate, a crash)
	Partner  Kind = "partner"  // the partner that goes down answers 503 for Dur
	Stripe   Kind = "stripe"   // Stripe answers 500 to everything for Dur
	Latency  Kind = "latency"  // added latency (Millis ± a quarter) on the Redis (Target 0) or PostgreSQL (1) link for Dur
	Cut      Kind = "cut"      // every connection of the Redis (Target 0) or PostgreSQL (1) link cut, the link refused for Dur
)

// Kinds lists every kind, in the order the summary line names them.
var Kinds = []Kind{SIGKILL, SIGTERM, Failover, SIGSTOP, Postgres, Partner, Stripe, Latency, Cut}

// Fault is one fault of the schedule.
type Fault struct {
	// At is when it starts, from the start of the run.
	At   time.Duration
	Kind Kind
	// Dur is how long it lasts (SIGSTOP, partner, Stripe, latency, cut).
	Dur time.Duration
	// Pause is how long a stopped process stays down before its restart
	// (SIGKILL, SIGTERM, failover).
	Pause time.Duration
	// Target is the worker index (SIGKILL, SIGTERM) or which node or link
	// (see Kind).
	Target int
	// Millis is the added latency in milliseconds (latency).
	Millis int
}

func (f Fault) String() string {
	s := fmt.Sprintf("%7.1fs %-8s", f.At.Seconds(), f.Kind)
	switch f.Kind {
	case SIGKILL, SIGTERM:
		s += fmt.Sprintf(" worker w%d, restarted after %.1fs", f.Target, f.Pause.Seconds())
	case Failover:
		s += fmt.Sprintf(" master killed, back as a replica after %.1fs", f.Pause.Seconds())
	case SIGSTOP:
		s += fmt.Sprintf(" %s paused %.1fs", []string{"master", "replica"}[f.Target], f.Dur.Seconds())
	case Postgres:
		s += " restart, " + []string{"fast shutdown", "immediate (crash)"}[f.Target]
	case Partner:
		s += fmt.Sprintf(" down for %.1fs", f.Dur.Seconds())
	case Stripe:
		s += fmt.Sprintf(" 500 for %.1fs", f.Dur.Seconds())
	case Latency:
		s += fmt.Sprintf(" +%d ms on the %s link for %.1fs", f.Millis, linkName(f.Target), f.Dur.Seconds())
	case Cut:
		s += fmt.Sprintf(" %s link cut for %.1fs", linkName(f.Target), f.Dur.Seconds())
	}
	return s
}

func linkName(target int) string { return []string{"Redis", "PostgreSQL"}[target] }

// LeaseDrain is how long after a SIGKILL of a worker or of the Redis master
// the system may need to settle: asynq's recoverer reruns a job whose
// worker died once its lease (30 s) expired 30 s ago, and each worker
// process looks once a minute (and at its start).
const LeaseDrain = 75 * time.Second

// Plan draws the fault schedule of a run of length d with workers worker
// processes from seed; the same seed and arguments give the same schedule.
// Four tracks run side by side, each fault of a track after the previous
// one settled: worker processes (SIGKILL, SIGTERM), Redis (failover,
// SIGSTOP), PostgreSQL (restarts), and links and peers (partner down,
// Stripe 500, latency, cuts). Each track goes through its
// kinds once first, then draws at random. Faults whose effects can take
// LeaseDrain to settle (SIGKILL, failover) are placed no later than
// d-LeaseDrain, or in the first 15 s of a short run.
func Plan(seed uint64, d time.Duration, workers int) []Fault {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed50a4))
	short := d < 5*time.Minute
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	lastLease := max(d-LeaseDrain, 15*time.Second)
	gap := func() time.Duration {
		if short {
			return between(2*time.Second, 5*time.Second)
		}
		return between(5*time.Second, 30*time.Second)
	}

	var out []Fault
	track := func(first time.Duration, kinds []Kind, fallback []Kind, build func(f *Fault) (settle time.Duration)) {
		at := first
		for i := 0; at < d; i++ {
			k := kinds[r.IntN(len(kinds))]
			if i < len(kinds) {
				k = kinds[i]
			}
			if (k == SIGKILL || k == Failover) && at > lastLease {
				k = fallback[r.IntN(len(fallback))]
			}
			f := Fault{At: at, Kind: k}
			settle := build(&f)
			out = append(out, f)
			at += settle + gap()
		}
	}
	track(between(2*time.Second, 4*time.Second), []Kind{SIGKILL, SIGTERM}, []Kind{SIGTERM}, func(f *Fault) time.Duration {
		f.Target, f.Pause = r.IntN(workers), between(time.Second, 4*time.Second)
		return f.Pause + 3*time.Second // the restarted worker is up
	})
	track(between(2*time.Second, 5*time.Second), []Kind{Failover, SIGSTOP}, []Kind{SIGSTOP}, func(f *Fault) time.Duration {
		if f.Kind == Failover {
			// ~4 s to promote, ~15 s for the old master to be a replica again.
			f.Pause = between(2*time.Second, 5*time.Second)
			return f.Pause + 25*time.Second
		}
		f.Target, f.Dur = r.IntN(2), between(time.Second, 2*time.Second)
		return f.Dur + time.Second
	})
	track(between(4*time.Second, 10*time.Second), []Kind{Postgres}, nil, func(f *Fault) time.Duration {
		f.Target = r.IntN(2)
		return 3*time.Second + gap()
	})
	track(between(time.Second, 3*time.Second), []Kind{Partner, Stripe, Cut, Latency}, nil, func(f *Fault) time.Duration {
		switch f.Kind {
		case Partner:
			f.Dur = between(20*time.Second, 60*time.Second)
			if short {
				f.Dur = between(6*time.Second, 12*time.Second)
			}
		case Stripe:
			f.Dur = between(2*time.Second, 6*time.Second)
		case Latency:
			f.Target, f.Millis, f.Dur = r.IntN(2), 20+r.IntN(230), between(3*time.Second, 10*time.Second)
			if short {
				f.Dur = between(2*time.Second, 6*time.Second)
			}
		case Cut:
			f.Target, f.Dur = r.IntN(2), between(200*time.Millisecond, 1500*time.Millisecond)
		}
		return f.Dur
	})
	slices.SortStableFunc(out, func(a, b Fault) int { return int(a.At - b.At) })
	return out
}

// Counts is the number of faults of each kind.
func Counts(fs []Fault) map[Kind]int {
	m := map[Kind]int{}
	for _, f := range fs {
		m[f.Kind]++
	}
	return m
}

// CountLine is "31 (sigkill 6, sigterm 4, …)" for the summary line.
func CountLine(fs []Fault) string {
	m := Counts(fs)
	var parts []string
	for _, k := range Kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return fmt.Sprintf("%d (%s)", len(fs), strings.Join(parts, ", "))
}
