package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// admin reads Redis's own counters and empties the database between phases.
type admin struct {
	rc    redis.UniversalClient
	flush bool
}

// check pings Redis, refuses a non-empty database without -flush, and
// returns the server version.
func (a admin) check(ctx context.Context) (string, error) {
	if err := a.rc.Ping(ctx).Err(); err != nil {
		return "", fmt.Errorf("redis: %w", err)
	}
	n, err := a.rc.DBSize(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("redis: DBSIZE: %w", err)
	}
	if n > 0 && !a.flush {
		return "", fmt.Errorf("the database holds %d keys: loadgen writes jobs into it and must FLUSHDB between phases; "+
			"point it at an empty database or pass -flush to destroy those keys", n)
	}
	info, err := a.info(ctx, "server")
	if err != nil {
		return "", err
	}
	return info["redis_version"], nil
}

// reset empties the database when -flush was given.
func (a admin) reset(ctx context.Context) error {
	if !a.flush {
		return nil
	}
	if err := a.rc.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("redis: FLUSHDB: %w", err)
	}
	return nil
}

// info returns the key:value lines of one INFO section.
func (a admin) info(ctx context.Context, section string) (map[string]string, error) {
	s, err := a.rc.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: INFO %s: %w", section, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

func (a admin) infoInt(ctx context.Context, section, key string) (int64, error) {
	m, err := a.info(ctx, section)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(m[key], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis: INFO %s: %s is %q", section, key, m[key])
	}
	return n, nil
}

// usedMemory is INFO memory used_memory, in bytes.
func (a admin) usedMemory(ctx context.Context) (int64, error) {
	return a.infoInt(ctx, "memory", "used_memory")
}

// commands is INFO stats total_commands_processed. It counts the commands
// a Lua script runs as well as the EVALSHA itself, and not the INFO that
// reports it (that one shows in the next reading).
func (a admin) commands(ctx context.Context) (int64, error) {
	return a.infoInt(ctx, "stats", "total_commands_processed")
}

// commandStats is INFO commandstats as command → calls.
func (a admin) commandStats(ctx context.Context) (map[string]int64, error) {
	m, err := a.info(ctx, "commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for k, v := range m {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: INFO commandstats: %s=%q", k, v)
		}
		out[name] = n
	}
	return out, nil
}

// perJob formats the commands run between two commandstats readings,
// divided by jobs: "total 5.00, evalsha 2.00, exists 1.00, …", most
// frequent first.
func perJob(before, after map[string]int64, jobs int) string {
	d := deltas(before, after)
	var total int64
	for _, x := range d {
		total += x.n
	}
	parts := []string{fmt.Sprintf("total %.2f", float64(total)/float64(jobs))}
	for _, x := range d {
		parts = append(parts, fmt.Sprintf("%s %.2f", strings.ToLower(x.name), float64(x.n)/float64(jobs)))
	}
	return strings.Join(parts, ", ")
}

// perSecond formats the commands run between two commandstats readings
// per second of secs, most frequent first.
func perSecond(before, after map[string]int64, secs float64) string {
	d := deltas(before, after)
	parts := make([]string, 0, len(d))
	for _, x := range d {
		parts = append(parts, fmt.Sprintf("%s %.1f", strings.ToLower(x.name), float64(x.n)/secs))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// calls is how often one command ran between two commandstats readings.
type calls struct {
	name string
	n    int64
}

// deltas is every command that ran between two commandstats readings,
// INFO itself (the readings) left out, most frequent first.
func deltas(before, after map[string]int64) []calls {
	var d []calls
	for k, v := range after {
		if n := v - before[k]; n > 0 && k != "info" {
			d = append(d, calls{k, n})
		}
	}
	slices.SortFunc(d, func(a, b calls) int { return int(b.n - a.n) })
	return d
}

// load is Redis's CPU time (cpu) and its commands by name (commandStats),
// read one after the other.
func (a admin) load(ctx context.Context) (time.Duration, map[string]int64, error) {
	stats, err := a.commandStats(ctx)
	if err != nil {
		return 0, nil, err
	}
	cpu, err := a.cpu(ctx)
	return cpu, stats, err
}

// cpu is Redis's INFO cpu used_cpu_user + used_cpu_sys.
func (a admin) cpu(ctx context.Context) (time.Duration, error) {
	m, err := a.info(ctx, "cpu")
	if err != nil {
		return 0, err
	}
	var total float64
	for _, k := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := strconv.ParseFloat(m[k], 64)
		if err != nil {
			return 0, fmt.Errorf("redis: INFO cpu: %s is %q", k, m[k])
		}
		total += v
	}
	return time.Duration(total * float64(time.Second)), nil
}
