package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// pingTimeout bounds the reachability check before Inspector calls.
const pingTimeout = 2 * time.Second

// inspector connects to Redis after checking that it answers, so an outage
// is reported with its cause (refused, timed out, auth) and quickly.
func (c *cli) inspector() (*tasks.Inspector, error) {
	cfg, err := c.config()
	if err != nil {
		return nil, err
	}
	in := tasks.NewInspector(cfg.redis)
	ctx, cancel := context.WithTimeout(c.ctx, pingTimeout)
	defer cancel()
	if err := in.Ping(ctx); err != nil {
		in.Close()
		return nil, fmt.Errorf("redis %s does not answer: %w", c.redisName(), err)
	}
	return in, nil
}

// redisName says which Redis is meant, without its password.
func (c *cli) redisName() string {
	if addrs := strings.TrimSpace(c.getenv("REDIS_CLUSTER_ADDRS")); addrs != "" {
		return "cluster " + addrs
	}
	return tasks.RedactURL(strings.TrimSpace(c.getenv("REDIS_URL")))
}

// inspect connects to Redis (after a ping) and shows what call returns
// from the Inspector.
func inspect[T any](c *cli, call func(context.Context, *tasks.Inspector) (T, error), text func(io.Writer, T) error) error {
	in, err := c.inspector()
	if err != nil {
		return err
	}
	defer in.Close()
	return show(c, func(ctx context.Context) (T, error) { return call(ctx, in) }, text)
}

// fromLedger opens the dead-letter ledger and shows what call returns
// from it.
func fromLedger[T any](c *cli, call func(context.Context, deadletter.Ledger) (T, error), text func(io.Writer, T) error) error {
	st, err := c.ledger()
	if err != nil {
		return err
	}
	defer st.Close()
	return show(c, func(ctx context.Context) (T, error) { return call(ctx, st.Ledger) }, text)
}

// show runs call within the Inspector deadline and prints its result:
// JSON with --json, else text.
func show[T any](c *cli, call func(context.Context) (T, error), text func(io.Writer, T) error) error {
	ctx, cancel := context.WithTimeout(c.ctx, inspectTimeout)
	defer cancel()
	v, err := call(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, v)
	}
	return text(c.stdout, v)
}

// onJob runs the command that takes one job ID: it parses args, calls
// call on the Inspector, says "<prefix>job <id> not found" for
// tasks.ErrNotFound and prints the job (after header, in text mode).
func (c *cli) onJob(name, prefix, header string, args []string, call func(*tasks.Inspector, context.Context, string) (tasks.Job, error)) error {
	pos, err := c.parse(c.flags(name), args, 1, "the job ID")
	if err != nil {
		return err
	}
	id := pos[0]
	return inspect(c, func(ctx context.Context, in *tasks.Inspector) (tasks.Job, error) {
		j, err := call(in, ctx, id)
		if errors.Is(err, tasks.ErrNotFound) {
			return j, fmt.Errorf("%sjob %s not found", prefix, id)
		}
		return j, err
	}, func(w io.Writer, j tasks.Job) error {
		if header != "" {
			fmt.Fprintf(w, header+"\n", j.ID)
		}
		return writeJob(w, j)
	})
}

func (c *cli) status(args []string) error {
	return c.onJob("status", "", "", args, (*tasks.Inspector).Status)
}

func (c *cli) stats(args []string) error {
	if _, err := c.parse(c.flags("stats"), args, 0, ""); err != nil {
		return err
	}
	return inspect(c, func(ctx context.Context, in *tasks.Inspector) ([]tasks.QueueStats, error) {
		return in.Stats(ctx)
	}, writeStats)
}
