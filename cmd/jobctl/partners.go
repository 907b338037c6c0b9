package main

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"time"

	"github.com/escrowjobs/escrowjobs/webhook"
)

// partners runs "partners list|enable|disable".
func (c *cli) partners(rest []string) error {
	if len(rest) == 0 {
		return usagef("partners: want a subcommand: list, enable or disable")
	}
	switch rest[0] {
	case "list":
		return c.partnersList(rest[1:])
	case "enable":
		return c.partnersEnable(rest[1:])
	case "disable":
		return c.partnersDisable(rest[1:])
	case "help", "-h", "-help", "--help":
		return c.usage()
	}
	return usagef("partners: unknown subcommand %q: want list, enable or disable", rest[0])
}

// partnerTools connects to Redis and returns the partner state and the
// redelivery that enable uses; close releases them.
func (c *cli) partnerTools() (st *webhook.State, rd *webhook.Redelivery, closeFn func(), err error) {
	desk, closeDesk, err := c.desk()
	if err != nil {
		return nil, nil, nil, err
	}
	in := desk.Inspector()
	st, err = webhook.NewState(webhook.StateConfig{Redis: in.Redis()})
	if err == nil {
		rd, err = webhook.NewRedelivery(webhook.RedeliveryConfig{
			Redis: in.Redis(), State: st, DeadLetters: webhook.LedgerDeadLetters{Desk: desk},
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
	list, err := deadline(c, "partners list", inspectTimeout, func(ctx context.Context) ([]webhook.Status, error) { return st.Statuses(ctx) })
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, list)
	}
	tw := table(c.stdout)
	fmt.Fprintln(tw, "ID\tSTATE\tFAILURES\tLAST SUCCESS\tWAITING")
	for _, s := range list {
		state := s.State
		if s.ThrottledUntil != nil {
			state += " (throttled until " + stamp(s.ThrottledUntil) + ")"
		}
		if !s.Known {
			state += " (not in the registry)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", s.ID, state, s.ConsecutiveFailures, stamp(s.LastSuccessAt), s.Waiting)
	}
	return tw.Flush()
}

// checkPartner refuses an ID that cannot be a partner.
func checkPartner(id string) error {
	if !webhook.ValidPartnerID(id) {
		return usagef("partner id %q: want 1-64 letters, digits, '-', '_' or '.'", id)
	}
	return nil
}

// defaultActor is the OS user, recorded with what an operator does.
func defaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "jobctl"
}

func (c *cli) partnersEnable(args []string) error {
	fs := c.flags("partners enable")
	actor := fs.String("actor", defaultActor(), "who enables the partner (recorded with each redelivery)")
	pos, err := c.parse(fs, args, 1, "the partner ID")
	if err != nil {
		return err
	}
	if err := checkPartner(pos[0]); err != nil {
		return err
	}
	_, rd, closeFn, err := c.partnerTools()
	if err != nil {
		return err
	}
	defer closeFn()
	n, err := deadline(c, "partners enable "+pos[0], enableTimeout, func(ctx context.Context) (int, error) { return rd.Enable(ctx, pos[0], *actor) })
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, map[string]any{"id": pos[0], "state": webhook.StateHealthy, "redelivered": n})
	}
	fmt.Fprintf(c.stdout, "partner %s enabled; %s dead letter(s) scheduled for redelivery\n", pos[0], strconv.Itoa(n))
	return nil
}

func (c *cli) partnersDisable(args []string) error {
	fs := c.flags("partners disable")
	reason := fs.String("reason", "", "why (recorded)")
	actor := fs.String("actor", defaultActor(), "who disables the partner (recorded)")
	pos, err := c.parse(fs, args, 1, "the partner ID")
	if err != nil {
		return err
	}
	if err := checkPartner(pos[0]); err != nil {
		return err
	}
	st, _, closeFn, err := c.partnerTools()
	if err != nil {
		return err
	}
	defer closeFn()
	why := "disabled by " + *actor
	if *reason != "" {
		why += ": " + *reason
	}
	if _, err := deadline(c, "partners disable "+pos[0], inspectTimeout, func(ctx context.Context) (struct{}, error) { return struct{}{}, st.Disable(ctx, pos[0], why) }); err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, map[string]any{"id": pos[0], "state": webhook.StateDisabled})
	}
	fmt.Fprintf(c.stdout, "partner %s disabled: its deliveries become dead letters until 'jobctl partners enable %s'\n", pos[0], pos[0])
	return nil
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
