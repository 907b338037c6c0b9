package console

import (
	"cmp"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// escrowSearch answers the search box: GET /console/escrows?transactionId=…
func (c *Console) escrowSearch(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.URL.Query().Get("transactionId"))
	if id == "" {
		c.fail(w, r, http.StatusBadRequest, "Bad request", "Type a transaction ID (e.g. esc-123) in the search box.")
		return
	}
	http.Redirect(w, r, Root+"/escrows/"+url.PathEscape(id), http.StatusSeeOther)
}

// event is one line of an escrow's story.
type event struct {
	At   time.Time
	Kind string // "job" or "dead letter"
	Job  tasks.HistoryJob
	Dead deadletter.Entry
}

// escrowData is the page of one escrow.
type escrowData struct {
	ID     string
	Flows  []flows.View
	Events []event
}

func (c *Console) escrow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := payloads.ValidateEscrowID(id); err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad request", "Transaction ID "+truncate(id, 100)+": "+maskErr(err))
		return
	}
	d := escrowData{ID: id}
	if c.cfg.Flows != nil {
		for _, name := range c.cfg.FlowNames {
			v, err := c.cfg.Flows.Status(r.Context(), flows.ID(name, id))
			switch {
			case errors.Is(err, flows.ErrNotFound):
				continue
			case err != nil:
				c.storeError(w, r, "Flows of escrow "+id, err)
				return
			}
			v.Steps = dependencyOrder(v.Steps)
			d.Flows = append(d.Flows, v)
		}
	}
	if c.cfg.Escrows != nil {
		jobs, err := c.cfg.Escrows.History(r.Context(), id)
		if err != nil {
			c.storeError(w, r, "Jobs of escrow "+id, err)
			return
		}
		for _, j := range jobs {
			at := time.Time{}
			switch {
			case j.EnqueuedAt != nil:
				at = *j.EnqueuedAt
			case j.DeadLetter != nil:
				at = j.DeadLetter.FailedAt
			}
			d.Events = append(d.Events, event{At: at, Kind: "job", Job: j})
		}
	}
	if c.cfg.DeadLetters != nil {
		seen := 0
		for cursor := ""; seen < deadletter.MaxScan; {
			p, err := c.cfg.DeadLetters.List(r.Context(), deadletter.Filter{TransactionID: id}, cursor, 500)
			if err != nil {
				c.storeError(w, r, "Dead letters of escrow "+id, err)
				return
			}
			for _, e := range p.Entries {
				d.Events = append(d.Events, event{At: e.FailedAt, Kind: "dead letter", Dead: e.Masked()})
			}
			seen += len(p.Entries)
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
	}
	slices.SortStableFunc(d.Events, func(a, b event) int { return cmp.Compare(a.At.UnixNano(), b.At.UnixNano()) })
	c.render(w, r, http.StatusOK, "escrow", "Escrow "+id, "escrows", d)
}
