package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/cmd/internal/ledgerenv"
	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// maxDLQLimit is the largest --limit of dlq list.
const maxDLQLimit = 10000

// bulkTimeout bounds a bulk requeue (each job is one Redis transaction and
// one ledger write).
const bulkTimeout = 5 * time.Minute

// deadLetterList is dlq list --json: the shape of GET /api/v1/dead-letters.
type deadLetterList struct {
	Items []deadletter.Entry `json:"items"`
	Next  *string            `json:"next"`
}

// ledger opens the dead-letter ledger of the environment (the one the
// workers record into). It takes no default: without
// DEAD_LETTER_DATABASE_URL (or AUDIT_DATABASE_URL) and DEAD_LETTER_PATH it
// fails naming them, and a file ledger that does not exist is an error, not
// a new empty file. With -v, or when announce is set (dlq list), it says
// on standard error which ledger it reads.
func (c *cli) ledger() (*ledgerenv.Store, error) {
	lc, err := ledgerenv.Load(c.getenv)
	if err != nil {
		return nil, err
	}
	if err := lc.Require(); err != nil {
		return nil, err
	}
	if c.verbose || c.announceLedger {
		fmt.Fprintf(c.stderr, "ledger: %s\n", redact(lc.String(), c.getenv))
	}
	ctx, cancel := context.WithTimeout(c.ctx, inspectTimeout)
	defer cancel()
	return lc.OpenExisting(ctx)
}

// desk opens Redis and the ledger for a repair.
func (c *cli) desk() (*repair.Desk, func(), error) {
	in, err := c.inspector()
	if err != nil {
		return nil, nil, err
	}
	st, err := c.ledger()
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	return repair.NewDesk(in, st.Ledger), func() { st.Close(); in.Close() }, nil
}

// filterFlags are the filter flags of dlq list and a bulk dlq requeue.
type filterFlags struct {
	typ, queue, transactionID, partnerID, state, since, until string
}

func (ff *filterFlags) add(fs *flag.FlagSet, withState bool) {
	fs.StringVar(&ff.typ, "type", "", "")
	fs.StringVar(&ff.queue, "queue", "", "")
	fs.StringVar(&ff.transactionID, "transaction-id", "", "")
	fs.StringVar(&ff.partnerID, "partner-id", "", "")
	fs.StringVar(&ff.since, "since", "", "")
	fs.StringVar(&ff.until, "until", "", "")
	if withState {
		fs.StringVar(&ff.state, "state", "", "")
	}
}

func (ff filterFlags) any() bool {
	return ff.typ != "" || ff.queue != "" || ff.transactionID != "" || ff.partnerID != "" || ff.since != "" || ff.until != ""
}

// filter checks the flags; errors are usage errors naming the flag.
func (ff filterFlags) filter(cmd string) (deadletter.Filter, error) {
	f := deadletter.Filter{Type: ff.typ, Queue: ff.queue, TransactionID: ff.transactionID, PartnerID: ff.partnerID, State: ff.state}
	if f.Type != "" {
		if _, err := tasks.Lookup(f.Type); err != nil {
			return f, usagef("%s: --type: %v", cmd, err)
		}
	}
	switch f.State {
	case "", deadletter.StateOpen, deadletter.StateRequeued, deadletter.StateDiscarded:
	default:
		return f, usagef("%s: --state must be open, requeued or discarded, got %q", cmd, f.State)
	}
	for _, tf := range []struct {
		name, v string
		dst     *time.Time
	}{{"since", ff.since, &f.Since}, {"until", ff.until, &f.Until}} {
		if tf.v == "" {
			continue
		}
		t, err := deadletter.ParseTime(tf.v, time.Now())
		if err != nil {
			return f, usagef("%s: --%s %q: %v", cmd, tf.name, tf.v, err)
		}
		*tf.dst = t
	}
	if err := f.Validate(); err != nil {
		return f, usagef("%s: %v", cmd, err)
	}
	return f, nil
}

// osActor is the default --actor: the OS user.
func (c *cli) osActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := c.getenv("USER"); u != "" {
		return u
	}
	return "jobctl"
}

func (c *cli) dlq(rest []string) error {
	return c.subcommand("dlq", rest, []command{{"list", c.dlqList}, {"show", c.dlqShow}, {"requeue", c.dlqRequeue}, {"discard", c.dlqDiscard}})
}

func (c *cli) dlqList(args []string) error {
	fs := c.flags("dlq list")
	limit := fs.Int("limit", 50, "")
	cursor := fs.String("cursor", "", "")
	var ff filterFlags
	ff.add(fs, true)
	if _, err := c.parse(fs, args, 0, ""); err != nil {
		return err
	}
	if *limit < 1 || *limit > maxDLQLimit {
		return usagef("dlq list: --limit must be 1-%d, got %d", maxDLQLimit, *limit)
	}
	f, err := ff.filter("dlq list")
	if err != nil {
		return err
	}
	c.announceLedger = true // "no dead letters" must say where it looked
	return fromLedger(c, func(ctx context.Context, l deadletter.Ledger) (deadLetterList, error) {
		page, err := l.List(ctx, f, *cursor, *limit)
		if errors.Is(err, deadletter.ErrBadCursor) {
			return deadLetterList{}, usagef("dlq list: --cursor is not a cursor jobctl or the API handed out")
		}
		if err != nil {
			return deadLetterList{}, fmt.Errorf("dlq list: %w", err)
		}
		out := deadLetterList{Items: make([]deadletter.Entry, len(page.Entries))}
		for i, e := range page.Entries {
			out.Items[i] = e.Masked()
		}
		if page.Next != "" {
			out.Next = &page.Next
		}
		return out, nil
	}, writeDeadLetters)
}

// shownDeadLetter is what dlq show prints: the job's latest dead letter
// (the API's shape of GET /api/v1/dead-letters/{id}) and every run of
// the job, newest first, each failure with its fate.
type shownDeadLetter struct {
	deadletter.Entry
	// WaitingBehind counts the later events of its escrow that wait for
	// the open dead letter of an event to an "ordered" partner.
	WaitingBehind int                `json:"waitingBehind,omitempty"`
	Runs          []deadletter.Entry `json:"runs"`
}

func (c *cli) dlqShow(args []string) error {
	pos, err := c.parse(c.flags("dlq show"), args, 1, "the job ID")
	if err != nil {
		return err
	}
	return fromLedger(c, func(ctx context.Context, l deadletter.Ledger) (shownDeadLetter, error) {
		runs, err := deadletter.HistoryOf(ctx, l, pos[0])
		if errors.Is(err, deadletter.ErrNotFound) {
			return shownDeadLetter{}, fmt.Errorf("no dead letter of job %s", pos[0])
		}
		if err != nil {
			return shownDeadLetter{}, err
		}
		out := shownDeadLetter{Runs: make([]deadletter.Entry, len(runs))}
		for i, e := range runs {
			out.Runs[i] = e.Masked()
		}
		out.Entry = out.Runs[0]
		out.WaitingBehind = c.waitingBehind(ctx, runs[0])
		return out, nil
	}, writeShown)
}

// waitingBehind counts the later events of the escrow that wait for the
// open dead letter e of an event to an ordered partner. It asks Redis
// only for such a dead letter, and a Redis that does not answer leaves
// the count out (the ledger is the answer).
func (c *cli) waitingBehind(ctx context.Context, e deadletter.Entry) int {
	if e.State != deadletter.StateOpen || e.Type != (payloads.WebhookEscrowStatusChanged{}).TaskType() {
		return 0
	}
	in, err := c.inspector()
	if err != nil {
		return 0
	}
	defer in.Close()
	st, err := partner.NewState(partner.StateConfig{Redis: in.Redis()})
	if err != nil {
		return 0
	}
	n, _ := st.WaitingBehind(ctx, e.ID, e.Type, e.Payload)
	return n
}

// writeShown prints the latest dead letter as "key: value" lines, then a
// table of every run.
func writeShown(w io.Writer, s shownDeadLetter) error {
	if err := writeDeadLetter(w, s.Entry); err != nil {
		return err
	}
	if s.WaitingBehind > 0 {
		fmt.Fprintf(w, "waiting behind it: %d later events of its escrow (its partner is ordered; they go once this one is delivered, discarded or its redelivery ends)\n", s.WaitingBehind)
	}
	fmt.Fprintf(w, "\nruns (%d, newest first):\n", len(s.Runs))
	tw := table(w)
	fmt.Fprintln(tw, "FAILED AT\tRUN\tWHY\tATTEMPTS\tSTATE\tBY\tRESOLVED AT\tREASON\tERROR")
	for _, e := range s.Runs {
		run, by, reason, resolved := e.Run, e.Actor, cell(e.Reason), "-"
		if run == "" {
			run = "first"
		}
		if e.ResolvedAt != nil {
			resolved = stamp(e.ResolvedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", stamp(&e.FailedAt), run, e.Why, e.Attempts, e.State,
			orDash(by), resolved, orDash(reason), truncate(cell(e.Error), lastErrorWidth))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) dlqRequeue(args []string) error {
	fs := c.flags("dlq requeue")
	reason := fs.String("reason", "", "")
	actor := fs.String("actor", "", "")
	dryRun := fs.Bool("dry-run", false, "")
	var ff filterFlags
	ff.add(fs, false)
	pos, err := c.parse(fs, args, -1, "")
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 1:
		return usagef("dlq requeue: want one job ID, got %q", strings.Join(pos, " "))
	case len(pos) == 1 && (ff.any() || *dryRun):
		return usagef("dlq requeue: give a job ID or filters (--type, --since, …), not both")
	case len(pos) == 0 && !ff.any():
		return usagef("dlq requeue: missing the job ID (or filters for a bulk requeue: --type, --queue, --partner-id, --transaction-id, --since, --until)")
	}
	return c.withDesk(actor, func(d *repair.Desk) error {
		if len(pos) == 1 {
			return c.resolve(pos[0], *actor, *reason, d.Requeue)
		}
		return c.bulkRequeue(d, ff, *dryRun, *actor, *reason)
	})
}

// bulkRequeue requeues the open dead letters that ff selects and prints
// what it matched and requeued.
func (c *cli) bulkRequeue(d *repair.Desk, ff filterFlags, dryRun bool, actor, reason string) error {
	f, err := ff.filter("dlq requeue")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, bulkTimeout)
	defer cancel()
	b, err := d.RequeueMatching(ctx, f, dryRun, actor, reason)
	if err != nil {
		return fmt.Errorf("dlq requeue: %w", err)
	}
	if err := c.printBulk(b, dryRun); err != nil {
		return err
	}
	if len(b.Failed) > 0 {
		return fmt.Errorf("dlq requeue: %d of %d not requeued (see above; run it again to retry them)", len(b.Failed), b.Matched)
	}
	return nil
}

// printBulk prints what a bulk requeue matched and requeued, and why the
// ones that failed did: masked like every other message (addresses, a
// URL's password and query, the environment's Redis passwords).
func (c *cli) printBulk(b repair.Bulk, dryRun bool) error {
	for id, why := range b.Failed {
		b.Failed[id] = tasks.RedactText(redact(why, c.getenv))
	}
	if c.json {
		return writeJSON(c.stdout, b)
	}
	verb := "requeued"
	if dryRun {
		verb = "would requeue (dry run)"
	}
	fmt.Fprintf(c.stdout, "matched %d, %s %d\n", b.Matched, verb, max(b.Requeued, len(b.IDs)))
	for _, id := range b.IDs {
		fmt.Fprintln(c.stdout, id)
	}
	for id, why := range b.Failed {
		fmt.Fprintf(c.stdout, "failed %s: %s\n", id, oneLine(why))
	}
	return nil
}

func (c *cli) dlqDiscard(args []string) error {
	fs := c.flags("dlq discard")
	reason := fs.String("reason", "", "")
	actor := fs.String("actor", "", "")
	pos, err := c.parse(fs, args, 1, "the job ID")
	if err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usagef("dlq discard: --reason is required (why the job will not run again)")
	}
	return c.withDesk(actor, func(d *repair.Desk) error {
		return c.resolve(pos[0], *actor, *reason, d.Discard)
	})
}

// withDesk opens Redis and the ledger for a repair by *actor (the OS user
// when not given) and runs do.
func (c *cli) withDesk(actor *string, do func(*repair.Desk) error) error {
	if *actor == "" {
		*actor = c.osActor()
	}
	d, done, err := c.desk()
	if err != nil {
		return err
	}
	defer done()
	return do(d)
}

// resolve requeues or discards dead letter id (do) and prints the record:
// "requeued <id>" or "discarded <id>" and the record, or the record as JSON.
func (c *cli) resolve(id, actor, reason string, do func(ctx context.Context, id, actor, reason string) (deadletter.Entry, error)) error {
	return show(c, func(ctx context.Context) (deadletter.Entry, error) {
		e, err := do(ctx, id, actor, reason)
		if err != nil {
			return e, repairError(id, err)
		}
		return e.Masked(), nil
	}, func(w io.Writer, e deadletter.Entry) error {
		fmt.Fprintf(w, "%s %s\n", e.State, e.ID)
		return writeDeadLetter(w, e)
	})
}

func repairError(id string, err error) error {
	switch {
	case errors.Is(err, deadletter.ErrNotFound), errors.Is(err, tasks.ErrNotFound):
		return fmt.Errorf("no dead letter of job %s (not found)", id)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: no answer within %s (nothing is lost: the job is archived or back in its queue; run the command again)", id, inspectTimeout)
	}
	return err
}

// writeDeadLetters prints the dead-letter table, newest failure first.
func writeDeadLetters(w io.Writer, l deadLetterList) error {
	if len(l.Items) == 0 {
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "ID\tTYPE\tQUEUE\tSTATE\tWHY\tATTEMPTS\tFAILED AT\tERROR")
	for _, e := range l.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			e.ID, e.Type, e.Queue, e.State, e.Why, e.Attempts, stamp(&e.FailedAt), truncate(cell(e.Error), lastErrorWidth))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.Next != nil {
		_, err := fmt.Fprintf(w, "more: --cursor %s\n", *l.Next)
		return err
	}
	return nil
}

// writeDeadLetter prints one dead letter as "key: value" lines.
func writeDeadLetter(w io.Writer, e deadletter.Entry) error {
	return writeFields(w, func(line func(k, v string)) {
		line("id", e.ID)
		line("type", e.Type)
		line("queue", e.Queue)
		line("state", e.State)
		line("why", e.Why)
		line("attempts", strconv.Itoa(e.Attempts))
		line("failed at", stamp(&e.FailedAt))
		line("error", cell(e.Error))
		if e.ResolvedAt != nil {
			line("resolved at", stamp(e.ResolvedAt))
			line("by", e.Actor)
			if e.Reason != "" {
				line("reason", cell(e.Reason))
			}
		}
		line("payload", cell(string(e.Payload)))
	})
}
