package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
		return nil, fmt.Errorf("Redis %s does not answer: %w", c.redisName(), err)
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

func (c *cli) status(args []string) error {
	pos, err := c.parse(c.flags("status"), args, 1, "the job ID")
	if err != nil {
		return err
	}
	id := pos[0]
	in, err := c.inspector()
	if err != nil {
		return err
	}
	defer in.Close()
	j, err := within(c.ctx, "status "+id, func() (tasks.Job, error) { return in.Status(id) })
	if errors.Is(err, tasks.ErrNotFound) {
		return fmt.Errorf("job %s not found", id)
	}
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, j)
	}
	return writeJob(c.stdout, j)
}

func (c *cli) stats(args []string) error {
	if _, err := c.parse(c.flags("stats"), args, 0, ""); err != nil {
		return err
	}
	in, err := c.inspector()
	if err != nil {
		return err
	}
	defer in.Close()
	qs, err := within(c.ctx, "stats", in.Stats)
	if err != nil {
		return err
	}
	if qs == nil {
		qs = []tasks.QueueStats{}
	}
	if c.json {
		return writeJSON(c.stdout, qs)
	}
	return writeStats(c.stdout, qs)
}
