package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/escrowjobs/escrowjobs/partner"
)

// partners runs "partners list|enable|disable".
func (c *cli) partners(rest []string) error {
	return c.subcommand("partners", rest, []command{{"list", c.partnersList}, {"enable", c.partnersEnable}, {"disable", c.partnersDisable}})
}

// partnerTools connects to Redis and returns the partner state and the
// redelivery that enable uses; close releases them.
func (c *cli) partnerTools() (st *partner.State, rd *partner.Redelivery, closeFn func(), err error) {
	desk, closeDesk, err := c.desk()
	if err != nil {
		return nil, nil, nil, err
	}
	in := desk.Inspector()
	st, err = partner.NewState(partner.StateConfig{Redis: in.Redis()})
	if err == nil {
		rd, err = partner.NewRedelivery(partner.RedeliveryConfig{
			Redis: in.Redis(), State: st, DeadLetters: partner.LedgerDeadLetters{Desk: desk},
		})
	}
	if err != nil {
		closeDesk()
		return nil, nil, nil, err
	}
	return st, rd, closeDesk, nil
}

func (c *cli) partnersList(args []string) error {
	if _, err := c.parse(c.flags("partners list"), args, 0, ""); err != nil {
		return err
	}
	st, _, closeFn, err := c.partnerTools()
	if err != nil {
		return err
	}
	defer closeFn()
	list, err := deadline(c, "partners list", inspectTimeout, func(ctx context.Context) ([]partner.Status, error) { return st.Statuses(ctx) })
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, list)
	}
	tw := table(c.stdout)
	fmt.Fprintln(tw, "ID\tSTATE\tFAILURES\tLAST SUCCESS\tWAITING\tORDERED\tWAITING IN ORDER")
	for _, s := range list {
		state := s.State
		if s.ThrottledUntil != nil {
			state += " (throttled until " + stamp(s.ThrottledUntil) + ")"
		}
		if !s.Known {
			state += " (not in the registry)"
		}
		ordered := "no"
		if s.Ordered {
			ordered = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%d\n", s.ID, state, s.ConsecutiveFailures, stamp(s.LastSuccessAt), s.Waiting, ordered, s.WaitingInOrder)
	}
	return tw.Flush()
}

// checkPartner refuses an ID that cannot be a partner.
func checkPartner(id string) error {
	if !partner.ValidPartnerID(id) {
		return usagef("partner id %q: want 1-64 letters, digits, '-', '_' or '.'", id)
	}
	return nil
}

func (c *cli) partnersEnable(args []string) error {
	fs := c.flags("partners enable")
	actor := fs.String("actor", c.osActor(), "who enables the partner (recorded with each redelivery)")
	return c.onPartner(fs, args, func(id string, _ *partner.State, rd *partner.Redelivery) error {
		n, err := deadline(c, "partners enable "+id, enableTimeout, func(ctx context.Context) (int, error) { return rd.Enable(ctx, id, *actor) })
		if err != nil {
			return err
		}
		if c.json {
			return writeJSON(c.stdout, map[string]any{"id": id, "state": partner.StateHealthy, "redelivered": n})
		}
		fmt.Fprintf(c.stdout, "partner %s enabled; %s dead letter(s) scheduled for redelivery\n", id, strconv.Itoa(n))
		return nil
	})
}

func (c *cli) partnersDisable(args []string) error {
	fs := c.flags("partners disable")
	reason := fs.String("reason", "", "why (recorded)")
	actor := fs.String("actor", c.osActor(), "who disables the partner (recorded)")
	return c.onPartner(fs, args, func(id string, st *partner.State, _ *partner.Redelivery) error {
		why := "disabled by " + *actor
		if *reason != "" {
			why += ": " + *reason
		}
		if _, err := deadline(c, "partners disable "+id, inspectTimeout, func(ctx context.Context) (struct{}, error) { return struct{}{}, st.Disable(ctx, id, why) }); err != nil {
			return err
		}
		if c.json {
			return writeJSON(c.stdout, map[string]any{"id": id, "state": partner.StateDisabled})
		}
		fmt.Fprintf(c.stdout, "partner %s disabled: its deliveries become dead letters until 'jobctl partners enable %s'\n", id, id)
		return nil
	})
}

// onPartner runs a command on one partner: it parses fs and the partner ID
// of args, checks the ID, connects and calls do.
func (c *cli) onPartner(fs *flag.FlagSet, args []string, do func(id string, st *partner.State, rd *partner.Redelivery) error) error {
	pos, err := c.parse(fs, args, 1, "the partner ID")
	if err != nil {
		return err
	}
	if err := checkPartner(pos[0]); err != nil {
		return err
	}
	st, rd, closeFn, err := c.partnerTools()
	if err != nil {
		return err
	}
	defer closeFn()
	return do(pos[0], st, rd)
}

// enableTimeout bounds "partners enable", which lists the partner's dead
// letters and requeues each.
const enableTimeout = 30 * time.Second

// deadline runs f with a deadline; Redis not answering in time is one
// line naming what was asked.
func deadline[T any](c *cli, what string, d time.Duration, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(c.ctx, d)
	defer cancel()
	v, err := f(ctx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return v, fmt.Errorf("%s: no answer from Redis within %s", what, d)
	}
	return v, err
}
