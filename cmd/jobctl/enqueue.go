package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/escrowjobs/escrowjobs/tasks"
)

// maxPayloadBytes bounds a payload read from a file or standard input; the
// largest valid payload (audit metadata ≤ 8 KiB) is far smaller.
const maxPayloadBytes = 1 << 20

// enqueueResult is the HTTP API's answer to POST /api/v1/jobs.
type enqueueResult struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

func (c *cli) enqueue(args []string) error {
	fs := c.flags("enqueue")
	payload := fs.String("payload", "", "")
	dedupeKey := fs.String("dedupe-key", "", "")
	in := fs.Duration("in", 0, "")
	pos, err := c.parse(fs, args, 1, "the job type")
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case !set["payload"]:
		return usagef("enqueue: missing --payload (inline JSON, @file or - for standard input)")
	case *in < 0:
		return usagef("enqueue: --in must not be negative, got %s", *in)
	case set["dedupe-key"] && *dedupeKey == "":
		return usagef("enqueue: --dedupe-key must not be empty")
	}
	raw, err := readPayload(*payload, c.stdin)
	if err != nil {
		return err
	}
	var opts []tasks.Option
	if *dedupeKey != "" {
		opts = append(opts, tasks.DedupeKey(*dedupeKey))
	}
	if *in > 0 {
		opts = append(opts, tasks.ProcessIn(*in))
	}
	t, err := tasks.FromJSON(pos[0], raw, opts...)
	if err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	client := tasks.NewClient(cfg.redis, cfg.clientOpts...)
	defer client.Close()
	id, err := client.Enqueue(c.ctx, t)
	dup := errors.Is(err, tasks.ErrDuplicate)
	if err != nil && !dup {
		return err
	}
	if dup {
		fmt.Fprintf(c.stderr, "jobctl: duplicate: job %s already exists; not enqueued again\n", id)
	}
	if c.json {
		return writeJSON(c.stdout, enqueueResult{ID: id, Duplicate: dup})
	}
	_, err = fmt.Fprintln(c.stdout, id)
	return err
}

// readPayload reads --payload: inline JSON, @file or - for standard input.
func readPayload(spec string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	from := "standard input"
	switch {
	case spec == "-":
		r = stdin
	case strings.HasPrefix(spec, "@"):
		name := strings.TrimPrefix(spec, "@")
		if name == "" {
			return nil, usagef("enqueue: --payload @ needs a file name")
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("payload file: %w", err)
		}
		defer f.Close()
		r, from = f, "payload file "+name
	default:
		return []byte(spec), nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxPayloadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read payload from %s: %w", from, err)
	}
	if len(b) > maxPayloadBytes {
		return nil, fmt.Errorf("payload from %s is larger than %d bytes", from, maxPayloadBytes)
	}
	return b, nil
}
