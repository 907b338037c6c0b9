package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/repair"
)

// filterForm is the dead-letter filter as the forms and links carry it
// (the API's query parameters).
type filterForm struct {
	Type, Queue, TransactionID, PartnerID, State, Since, Until string
}

// values is the filter as query parameters (unset fields left out).
func (f filterForm) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"type": f.Type, "queue": f.Queue, "transactionId": f.TransactionID,
		"partnerId": f.PartnerID, "state": f.State, "since": f.Since, "until": f.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// Any reports whether a field is set.
func (f filterForm) Any() bool { return len(f.values()) > 0 }

func readFilter(get func(string) string) filterForm {
	t := func(k string) string { return truncate(strings.TrimSpace(get(k)), 200) }
	return filterForm{Type: t("type"), Queue: t("queue"), TransactionID: t("transactionId"), PartnerID: t("partnerId"),
		State: t("state"), Since: t("since"), Until: t("until")}
}

// filter checks the form and makes the ledger's filter; the message names
// the bad field.
func (c *Console) filter(f filterForm) (deadletter.Filter, string) {
	out := deadletter.Filter{Type: f.Type, Queue: f.Queue, TransactionID: f.TransactionID, PartnerID: f.PartnerID, State: f.State}
	switch f.State {
	case "", deadletter.StateOpen, deadletter.StateRequeued, deadletter.StateDiscarded:
	default:
		return out, "state: must be open, requeued or discarded"
	}
	for _, tf := range []struct {
		name, v string
		dst     *time.Time
	}{{"since", f.Since, &out.Since}, {"until", f.Until, &out.Until}} {
		if tf.v == "" {
			continue
		}
		t, err := deadletter.ParseTime(tf.v, c.cfg.Now())
		if err != nil {
			return out, tf.name + ": " + err.Error()
		}
		*tf.dst = t
	}
	if err := out.Validate(); err != nil {
		return out, err.Error()
	}
	return out, ""
}

// listData is the dead-letters page.
type listData struct {
	Filter  filterForm
	States  []string
	Problem string
	Entries []deadletter.Entry
	Next    string // the next page's URL, "" on the last
	First   string // the first page's URL when this is not it
	Query   string // the filter as a query string
	Paged   bool
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	if c.cfg.DeadLetters == nil {
		c.storeError(w, r, "The dead-letter ledger", errUnavailable)
		return
	}
	q := r.URL.Query()
	ff := readFilter(q.Get)
	d := listData{Filter: ff, States: []string{deadletter.StateOpen, deadletter.StateRequeued, deadletter.StateDiscarded}, Query: ff.values().Encode()}
	f, bad := c.filter(ff)
	status := http.StatusOK
	if bad != "" {
		d.Problem, status = bad, http.StatusBadRequest
	} else {
		cursor := q.Get("cursor")
		page, err := c.cfg.DeadLetters.List(r.Context(), f, cursor, pageSize)
		if err != nil {
			c.storeError(w, r, "The dead-letter ledger", err)
			return
		}
		for _, e := range page.Entries {
			d.Entries = append(d.Entries, e.Masked())
		}
		if page.Next != "" {
			v := ff.values()
			v.Set("cursor", page.Next)
			d.Next = Root + "/dead-letters?" + v.Encode()
		}
		if cursor != "" {
			d.Paged = true
			d.First = Root + "/dead-letters"
			if d.Query != "" {
				d.First += "?" + d.Query
			}
		}
	}
	c.render(w, r, status, "dead_letters", "Dead letters", "dead-letters", d)
}

// detailData is the page of one dead letter.
type detailData struct {
	Latest        deadletter.Entry
	Runs          []deadletter.Entry
	Payload       string
	TransactionID string
	PartnerID     string
	Open          bool
	// WaitingBehind counts the later events of its escrow that wait for
	// it (an open event to an ordered partner).
	WaitingBehind int
}

func (c *Console) deadLetter(w http.ResponseWriter, r *http.Request) {
	if c.cfg.DeadLetters == nil {
		c.storeError(w, r, "The dead-letter ledger", errUnavailable)
		return
	}
	id := r.PathValue("id")
	e, err := c.cfg.DeadLetters.Get(r.Context(), id)
	if err != nil {
		c.storeError(w, r, "Dead letter of job "+id, err)
		return
	}
	runs, err := c.cfg.DeadLetters.History(r.Context(), id)
	if err != nil || len(runs) == 0 {
		runs = []deadletter.Entry{e}
	}
	d := detailData{Latest: e.Masked(), Open: e.State == deadletter.StateOpen}
	for _, run := range runs {
		d.Runs = append(d.Runs, run.Masked())
	}
	d.Payload = pretty(d.Latest.Payload)
	var p struct {
		TransactionID string `json:"transactionId"`
		PartnerID     string `json:"partnerId"`
	}
	_ = json.Unmarshal(e.Payload, &p)
	d.TransactionID, d.PartnerID = p.TransactionID, p.PartnerID
	if ow, ok := c.cfg.Partners.(OrderWaits); ok && d.Open {
		d.WaitingBehind = ow.WaitingBehind(r.Context(), e)
	}
	c.render(w, r, http.StatusOK, "dead_letter", "Dead letter "+id, "dead-letters", d)
}

// resolve is requeue or discard of the form's job.
func (c *Console) resolve(w http.ResponseWriter, r *http.Request, verb, done string, required bool,
	do func(r *http.Request, id, actor, reason string) (deadletter.Entry, error)) {
	if c.cfg.DeadLetters == nil {
		c.storeError(w, r, "The dead-letter ledger", errUnavailable)
		return
	}
	id := strings.TrimSpace(r.PostForm.Get("id"))
	if id == "" {
		c.fail(w, r, http.StatusBadRequest, "Bad request", "The form names no job.")
		return
	}
	reason, bad := reasonOf(r, required)
	if bad != "" {
		c.fail(w, r, http.StatusBadRequest, "Bad request", verb+" "+id+": "+bad+" Nothing was changed.")
		return
	}
	who := actor(r)
	if _, err := do(r, id, who, reason); err != nil {
		c.log.Warn("console: "+verb+" failed", "task_id", id, "actor", who, "err", maskErr(err))
		c.storeError(w, r, verb+" "+id, err)
		return
	}
	c.log.Info("console: dead letter "+done, "task_id", id, "actor", who, "remote", r.RemoteAddr)
	c.redirect(w, r, Root+"/dead-letters/"+url.PathEscape(id), "ok", fmt.Sprintf("Job %s %s by %s.", id, done, who))
}

func (c *Console) requeue(w http.ResponseWriter, r *http.Request) {
	c.resolve(w, r, "Requeue", "requeued", false, func(r *http.Request, id, actor, reason string) (deadletter.Entry, error) {
		return c.cfg.DeadLetters.Requeue(r.Context(), id, actor, reason)
	})
}

func (c *Console) discard(w http.ResponseWriter, r *http.Request) {
	c.resolve(w, r, "Discard", "discarded", true, func(r *http.Request, id, actor, reason string) (deadletter.Entry, error) {
		return c.cfg.DeadLetters.Discard(r.Context(), id, actor, reason)
	})
}

// bulkData is the result page of a bulk requeue or its dry run.
type bulkData struct {
	Filter filterForm
	DryRun bool
	Bulk   repair.Bulk
	Failed []failure
	Reason string
}

type failure struct{ ID, Why string }

func (c *Console) bulkRequeue(w http.ResponseWriter, r *http.Request) {
	if c.cfg.DeadLetters == nil {
		c.storeError(w, r, "The dead-letter ledger", errUnavailable)
		return
	}
	ff := readFilter(r.PostForm.Get)
	ff.State = "" // a bulk requeue takes open dead letters only
	f, bad := c.filter(ff)
	if bad != "" {
		c.fail(w, r, http.StatusBadRequest, "Bad request", "Bulk requeue: "+bad+". Nothing was changed.")
		return
	}
	reason, bad := reasonOf(r, false)
	if bad != "" {
		c.fail(w, r, http.StatusBadRequest, "Bad request", "Bulk requeue: "+bad+" Nothing was changed.")
		return
	}
	dry := r.PostForm.Get("dryRun") != ""
	who := actor(r)
	b, err := c.cfg.DeadLetters.RequeueMatching(r.Context(), f, dry, who, reason)
	if err != nil {
		c.storeError(w, r, "Bulk requeue", err)
		return
	}
	c.log.Info("console: bulk requeue", "dry_run", dry, "matched", b.Matched, "requeued", b.Requeued, "failed", len(b.Failed), "actor", who, "remote", r.RemoteAddr)
	d := bulkData{Filter: ff, DryRun: dry, Bulk: b, Reason: reason}
	for id, why := range b.Failed {
		d.Failed = append(d.Failed, failure{ID: id, Why: maskErr(errors.New(why))})
	}
	title := "Bulk requeue"
	if dry {
		title = "Bulk requeue: dry run"
	}
	c.render(w, r, http.StatusOK, "bulk", title, "dead-letters", d)
}
