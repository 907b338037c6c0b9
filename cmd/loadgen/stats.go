package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// latencies is a sorted set of samples.
type latencies []time.Duration

func sorted(d []time.Duration) latencies {
	slices.Sort(d)
	return latencies(d)
}

// q is the q-quantile (nearest rank): q(0.99) is p99.
func (l latencies) q(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(l)))) - 1
	return l[min(max(i, 0), len(l)-1)]
}

// progress is a one-line text bar on stderr. It shows only when a phase
// lasts longer than half a second.
type progress struct {
	w     io.Writer
	label string
	total int64
	done  atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startProgress(w io.Writer, enabled bool, label string, total int) *progress {
	p := &progress{w: w, label: label, total: int64(total), stop: make(chan struct{})}
	if !enabled {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		delay := time.NewTimer(500 * time.Millisecond)
		defer delay.Stop()
		select {
		case <-p.stop:
			return
		case <-delay.C:
		}
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			p.render()
			select {
			case <-p.stop:
				p.render()
				fmt.Fprintln(p.w)
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *progress) add(n int) { p.done.Add(int64(n)) }

func (p *progress) render() {
	const width = 30
	d := min(p.done.Load(), p.total)
	fill := int(d * width / max(p.total, 1))
	fmt.Fprintf(p.w, "\r%-34s [%s%s] %3d%% %d/%d", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), d*100/max(p.total, 1), d, p.total)
}

// finish removes the bar's goroutine (and ends its line).
func (p *progress) finish() {
	close(p.stop)
	p.wg.Wait()
}

// human formats a duration with three significant digits.
func human(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
